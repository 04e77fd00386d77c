"""The dovecot deploy: the mailbox store.

Where it sits. The end of every inbound message and the start of every
reading: Postfix hands mail over LMTP, where the user's Sieve filters and
vacation replies run and the quota is kept; users read it over IMAPS (with
IDLE: new mail is pushed, Art. 10) or POP3S, and edit their filters over
ManageSieve. Dovecot also checks every password, for IMAP, POP3, ManageSieve
and Postfix's submission (SASL), and answers Postfix's quota-status question
before a message is accepted.

What it owns. /etc/dovecot/dovecot.conf, whole: it includes nothing, so
Debian's conf.d/ (with its 2.4 traps, LAB.md) is not read. On Debian 12 also
/etc/dovecot/hopthu-sql.conf.ext. The global Sieve scripts in
/etc/dovecot/sieve/ (spam into Junk, learning from users' moves, Art. 11.6)
and their pipe program rspamd-learn. The vmail user and group (fixed ids)
and the mailboxes under dovecot__vmail_dir; the quota warning script; the
drop-in that makes systemd restart Dovecot (dovecot.service.d/hopthu.conf).
roles/dovecot/README.md explains every decision.

How a change is checked. dovecot.conf is checked with `doveconf -n` before
it is written; any changed file runs "Check Dovecot configuration" (the
whole configuration must load without a warning), then "Compile the global
Sieve scripts" (sievec, which fails on any error in them), then "Reload
Dovecot".

roles/dovecot/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template
from hopthu.deploys import userdb as userdb_deploy
from hopthu.deploys.mailhost import host_settings

UNIT_ACL = "/usr/local/sbin/hopthu-unit-acl"

#: The role's check handler (roles/dovecot/handlers/main.yml).
CHECK_SCRIPT = (
    "out=$(doveconf -n 2>&1 >/dev/null); status=$?; "
    "if [ \"$status\" -ne 0 ] || [ -n \"$out\" ]; then printf '%s\\n' \"$out\" >&2; exit 1; fi"
)


class UnitAclPending(FactBase):
    """Whether `hopthu-unit-acl --check` would change anything: true when the
    program is missing or its check fails (the real run then says why)."""

    def command(self, tool: str) -> str:
        return f"if [ -x {tool} ]; then {tool} --check 2>&1 | tail -n 1; else echo missing; fi"

    def process(self, output: list[str]) -> bool:
        return not output or output[-1].strip() != "hopthu-unit-acl: unchanged"


@operation(is_idempotent=False)
def apply_unit_acl(tool: str, force: bool = False):
    """Run hopthu-unit-acl when it would change something, or when forced.

    + tool: the hopthu-unit-acl path
    + force: run even if the check says nothing is pending (the program, its
      configuration or the user database changes in this same deploy, which
      the check, read beforehand, cannot see)
    """
    if force or host.get_fact(UnitAclPending, tool=tool):
        yield StringCommand(tool)


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_store host)."""
    values = host_settings()

    apt.packages(
        name="Install Dovecot",
        packages=values["dovecot__packages"],
        present=True,
    )
    server.group(
        name="Create the vmail group",
        group="vmail",
        gid=values["dovecot__vmail_gid"],
        system=False,
        present=True,
    )
    server.user(
        name="Create the vmail user",
        user="vmail",
        uid=values["dovecot__vmail_uid"],
        group="vmail",
        home="/var/vmail",
        create_home=False,
        shell="/usr/sbin/nologin",
        system=False,
        present=True,
    )
    files.directory(
        name="Create the mailbox directory",
        path="/var/vmail",
        present=True,
        user="vmail",
        group="vmail",
        mode="0750",
    )
    if values["dovecot__postfix_local"]:
        files.directory(
            name="Create the Postfix private socket directory",
            path="/var/spool/postfix/private",
            present=True,
            user="postfix",
            group="root",
            mode="0700",
        )
    files.directory(
        name="Create the hopthu helper directory",
        path="/usr/local/lib/hopthu",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    put_template(
        name="Render the quota warning script",
        template="usr/local/lib/hopthu/dovecot-quota-warning.j2",
        dest="/usr/local/lib/hopthu/dovecot-quota-warning",
        user="root",
        group="root",
        mode="0755",
        validate='python3 -I -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" %s',
        variables=values,
    )
    # --- Unit mailboxes: who reads them (Art. 13, roles/dovecot/README.md) ---
    # Always installed, like the Sieve programs; it runs only where
    # dovecot__unit_sharing is true (the last step before the handlers').

    # Dovecot's sharing map (which readers see whose mailboxes) is written by
    # Dovecot's own processes, which run as vmail.
    files.directory(
        name="Create the shared mailbox map directory",
        path="/var/lib/hopthu/dovecot",
        present=True,
        user="vmail",
        group="vmail",
        mode="0750",
    )
    acl_tool = put_template(
        name="Render the unit mailbox rights program",
        template="usr/local/sbin/hopthu-unit-acl.j2",
        dest="/usr/local/sbin/hopthu-unit-acl",
        user="root",
        group="root",
        mode="0755",
        validate='python3 -I -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" %s',
        variables=values,
    )

    # --- Junk: filing and learning (Art. 11.6, roles/dovecot/README.md) -------
    # Always installed: dovecot.conf decides whether Dovecot runs them
    # (dovecot__junk_sieve, dovecot__spam_learning), and every global script
    # compiles whatever the settings, so the last steps can compile them all.

    # The only programs global Sieve scripts may pipe to (sieve_pipe_bin_dir).
    files.directory(
        name="Create the Sieve pipe program directory",
        path="/usr/local/lib/hopthu/sieve-pipe",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    put_template(
        name="Render the Rspamd learning program",
        template="usr/local/lib/hopthu/sieve-pipe/rspamd-learn.j2",
        dest="/usr/local/lib/hopthu/sieve-pipe/rspamd-learn",
        user="root",
        group="root",
        mode="0755",
        validate="sh -n %s",
        variables=values,
    )
    # The rspamd role made the controller's password (root 0600) earlier in
    # the run; the learning program runs as vmail and must read it. Only the
    # group and mode change: the password is Rspamd's.
    password_file = values["dovecot__rspamd_controller_password_file"]
    if values["dovecot__spam_learning"] and password_file:
        files.file(
            name="Let vmail read the Rspamd controller password",
            path=password_file,
            present=True,
            user="root",
            group="vmail",
            mode="0640",
        )
    # Root's: users and vmail can read the global scripts, not change them.
    files.directory(
        name="Create the global Sieve script directory",
        path="/etc/dovecot/sieve",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    # Dovecot reads these; the warning and learning programs run afresh each time.
    config = [
        put_template(
            name="Render the junk Sieve script",
            template="etc/dovecot/sieve/junk.sieve.j2",
            dest="/etc/dovecot/sieve/junk.sieve",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the spam learning Sieve script",
            template="etc/dovecot/sieve/learn-spam.sieve.j2",
            dest="/etc/dovecot/sieve/learn-spam.sieve",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the ham learning Sieve script",
            template="etc/dovecot/sieve/learn-ham.sieve.j2",
            dest="/etc/dovecot/sieve/learn-ham.sieve",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
    ]
    if int(values["common__debian_major"]) == 12:
        config.append(put_template(
            name="Render the Dovecot 2.3 SQL settings",
            template="etc/dovecot/hopthu-sql.conf.ext.j2",
            dest="/etc/dovecot/hopthu-sql.conf.ext",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ))
    dovecot_conf = put_template(
        name="Render Dovecot configuration",
        template="etc/dovecot/dovecot.conf.j2",
        dest="/etc/dovecot/dovecot.conf",
        user="root",
        group="root",
        mode="0644",
        validate="doveconf -n -c %s",
        variables=values,
    )
    config.append(dovecot_conf)
    # --- Self-healing (Art. 11.1, roles/dovecot/README.md) ----------------------------
    # systemd restarts Dovecot when its master process dies. Restart= and the
    # start limits take effect with the daemon-reload; Dovecot is not restarted.
    files.directory(
        name="Create the Dovecot unit drop-in directory",
        path="/etc/systemd/system/dovecot.service.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    dropin = put_template(
        name="Render the Dovecot unit drop-in",
        template="etc/systemd/system/dovecot.service.d/hopthu.conf.j2",
        dest="/etc/systemd/system/dovecot.service.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # Now, not at the end: Dovecot is started below with the drop-in in force.
    systemd.daemon_reload(
        name="Reload systemd units after a Dovecot drop-in change",
        _if=dropin.did_change,
    )
    systemd.service(
        name="Enable and start Dovecot",
        service="dovecot.service",
        running=True,
        enabled=True,
    )
    # --- What the role's handlers do, in their order, only after a change ---------

    config_changed = any_changed(*config)
    server.shell(
        name="Check Dovecot configuration",
        commands=[CHECK_SCRIPT],
        _if=config_changed,
    )
    # sievec reads the new dovecot.conf (which enables the pipe extension the
    # learning scripts need; `-c`, because without it Dovecot 2.4's tools ask
    # the running daemon, which still has the old configuration) and writes each script's binary beside it, where
    # vmail can read but not write it; a script that does not compile stops
    # the run here.
    server.shell(
        name="Compile the global Sieve scripts",
        commands=["sievec -c /etc/dovecot/dovecot.conf /etc/dovecot/sieve"],
        _if=config_changed,
    )
    systemd.service(
        name="Reload Dovecot",
        service="dovecot.service",
        running=True,
        reloaded=True,
        _if=config_changed,
    )
    # After the reload, as the role runs it after flush_handlers: doveadm asks
    # the running Dovecot's auth service who a user is. The owner and the
    # delegates of each unit mailbox get their rights on it, from the user
    # database (the userdb deploy applied the registry earlier in the run);
    # anyone else loses theirs.
    if values["dovecot__unit_sharing"]:
        userdb_step = userdb_deploy.APPLIED.get(host.name)
        apply_unit_acl(
            name="Give unit mailbox owners and delegates their rights",
            tool=UNIT_ACL,
            force=bool(acl_tool.will_change or dovecot_conf.will_change
                       or (userdb_step is not None and userdb_step.will_change)),
        )
