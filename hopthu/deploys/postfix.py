"""The postfix deploy: the ministry's MTA.

Where it sits. Every message passes through here. From the Internet it
arrives on port 25, where postscreen turns away bots before smtpd sees them;
Postfix accepts it only for an existing mailbox of the ministry's domains
(the user database), refuses forged ministry senders, and hands it to
Dovecot over LMTP. The ministry's users submit on 587 (STARTTLS) or 465
(TLS), authenticated by Dovecot (SASL), and may send only as addresses they
own; Postfix relays their mail to the world with DANE where the destination
publishes it (Art. 2, 7, 11.5).

What it owns. /etc/postfix/main.cf and /etc/postfix/master.cf, whole, the
queries of the user database in /etc/postfix/sqlite/, and the drop-in that
makes systemd restart the master process (postfix@-.service on Debian 12,
postfix.service on Debian 13). roles/postfix/README.md explains every
decision, SMTPUTF8 included.

How a change is checked. Any changed file runs "Check Postfix
configuration": `postfix check` and `postconf`, whose output must be empty
(a warning fails the run), then "Reload Postfix". A failed check leaves
Postfix running on its old configuration.

roles/postfix/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings

#: The role's check handler (roles/postfix/handlers/main.yml): both commands
#: must succeed and print nothing but Debian's chroot copy notes.
CHECK_SCRIPT = (
    "out=$({ postfix check && postconf >/dev/null; } 2>&1); status=$?; "
    "out=$(printf '%s\\n' \"$out\" | grep -v '^updating .* => /var/spool/postfix/'); "
    "if [ \"$status\" -ne 0 ] || [ -n \"$out\" ]; then printf '%s\\n' \"$out\" >&2; exit 1; fi"
)


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_mx host)."""
    values = host_settings()

    apt.packages(
        name="Install Postfix",
        packages=values["postfix__packages"],
        present=True,
    )
    files.directory(
        name="Create the Postfix SQLite query directory",
        path="/etc/postfix/sqlite",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    queries = [
        put_template(
            name="Render the virtual mailbox domains query",
            template="etc/postfix/sqlite/virtual-mailbox-domains.cf.j2",
            dest="/etc/postfix/sqlite/virtual-mailbox-domains.cf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the virtual mailboxes query",
            template="etc/postfix/sqlite/virtual-mailbox-maps.cf.j2",
            dest="/etc/postfix/sqlite/virtual-mailbox-maps.cf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the virtual aliases query",
            template="etc/postfix/sqlite/virtual-alias-maps.cf.j2",
            dest="/etc/postfix/sqlite/virtual-alias-maps.cf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the sender logins query",
            template="etc/postfix/sqlite/sender-login-maps.cf.j2",
            dest="/etc/postfix/sqlite/sender-login-maps.cf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the archived recipients query",
            template="etc/postfix/sqlite/archived-recipients.cf.j2",
            dest="/etc/postfix/sqlite/archived-recipients.cf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
        put_template(
            name="Render the own-domain senders query",
            template="etc/postfix/sqlite/own-domain-senders.cf.j2",
            dest="/etc/postfix/sqlite/own-domain-senders.cf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        ),
    ]
    main_cf = put_template(
        name="Render Postfix main.cf",
        template="etc/postfix/main.cf.j2",
        dest="/etc/postfix/main.cf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    master_cf = put_template(
        name="Render Postfix master.cf",
        template="etc/postfix/master.cf.j2",
        dest="/etc/postfix/master.cf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # --- Self-healing (Art. 11.1, roles/postfix/README.md) ----------------------------
    # systemd restarts the master process when it dies. The drop-in goes to
    # the unit that runs the master: postfix@-.service on Debian 12
    # (postfix.service is a oneshot wrapper there), postfix.service on Debian
    # 13. It names the master's PID file, which systemd reads only when the
    # unit starts: a changed drop-in restarts Postfix (below, after the check).
    if int(values["common__debian_major"]) == 12:
        files.directory(
            name="Create the Postfix unit drop-in directory on Debian 12",
            path="/etc/systemd/system/postfix@-.service.d",
            present=True,
            user="root",
            group="root",
            mode="0755",
        )
        dropin = put_template(
            name="Render the Postfix unit drop-in on Debian 12",
            template="etc/systemd/system/postfix@-.service.d/hopthu.conf.j2",
            dest="/etc/systemd/system/postfix@-.service.d/hopthu.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )
    else:
        files.directory(
            name="Create the Postfix unit drop-in directory on Debian 13",
            path="/etc/systemd/system/postfix.service.d",
            present=True,
            user="root",
            group="root",
            mode="0755",
        )
        dropin = put_template(
            name="Render the Postfix unit drop-in on Debian 13",
            template="etc/systemd/system/postfix.service.d/hopthu.conf.j2",
            dest="/etc/systemd/system/postfix.service.d/hopthu.conf",
            user="root",
            group="root",
            mode="0644",
            variables=values,
        )
    # Now, not at the end: Postfix is started below with the drop-in in force.
    systemd.daemon_reload(
        name="Reload systemd units after a Postfix drop-in change",
        _if=dropin.did_change,
    )
    systemd.service(
        name="Enable and start Postfix",
        service="postfix.service",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, in their order, only after a change ---------

    changed = any_changed(*queries, main_cf, master_cf)
    server.shell(
        name="Check Postfix configuration",
        commands=[CHECK_SCRIPT],
        _if=any_changed(*queries, main_cf, master_cf, dropin),
    )
    # Not when the drop-in changed: the restart below reads the new
    # configuration anyway (roles/postfix/handlers/main.yml says why).
    systemd.service(
        name="Reload Postfix",
        service="postfix.service",
        running=True,
        reloaded=True,
        _if=[changed, lambda: not dropin.did_change()],
    )
    # systemd reads the drop-in's PIDFile= only when the unit starts. On Debian
    # 12 the restart of the wrapper postfix.service reaches postfix@-.service
    # (PartOf=). `systemctl restart` in a shell, as the clamav deploy does:
    # pyinfra's systemd.service decides between start and restart from what
    # it saw before the run.
    server.shell(
        name="Restart Postfix",
        commands=["systemctl restart postfix.service"],
        _if=dropin.did_change,
    )
