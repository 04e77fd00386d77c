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
/etc/dovecot/hopthu-sql.conf.ext. The vmail user and group (fixed ids) and
the mailboxes under dovecot__vmail_dir; the quota warning script.
roles/dovecot/README.md explains every decision.

How a change is checked. dovecot.conf is checked with `doveconf -n` before
it is written; any changed file runs "Check Dovecot configuration" (the
whole configuration must load without a warning), then "Reload Dovecot".

roles/dovecot/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings

#: The role's check handler (roles/dovecot/handlers/main.yml).
CHECK_SCRIPT = (
    "out=$(doveconf -n 2>&1 >/dev/null); status=$?; "
    "if [ \"$status\" -ne 0 ] || [ -n \"$out\" ]; then printf '%s\\n' \"$out\" >&2; exit 1; fi"
)


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
    # Dovecot reads these two; the warning script is run afresh each time.
    config = []
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
    config.append(put_template(
        name="Render Dovecot configuration",
        template="etc/dovecot/dovecot.conf.j2",
        dest="/etc/dovecot/dovecot.conf",
        user="root",
        group="root",
        mode="0644",
        validate="doveconf -n -c %s",
        variables=values,
    ))
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
    systemd.service(
        name="Reload Dovecot",
        service="dovecot.service",
        running=True,
        reloaded=True,
        _if=config_changed,
    )
