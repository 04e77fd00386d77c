"""The clamav deploy: the virus scanner.

Where it sits. Between Postfix's acceptance and the mailbox: Postfix hands
every message to Rspamd (milter) while the sender is still connected;
Rspamd's antivirus module sends it to clamd over a local unix socket. A
virus found is refused with 5xx; when clamd cannot answer, Rspamd defers the
message (4xx) and the sender retries: no unscanned mail is accepted (Art.
11.6, Art. 7). freshclam keeps the signatures current from the data centre's
own mirror, because the hosts have no route to the Internet (Art. 3).

What it owns. /etc/clamav/clamd.conf and /etc/clamav/freshclam.conf, whole;
/var/lib/clamav/hopthu.hdb (the ministry's own signatures); one drop-in each
for clamav-daemon.service and clamav-daemon.socket, beside Debian's
extend.conf; the checker /usr/local/lib/hopthu/clamav-checkconf. Which units
run: clamd and its socket always, freshclam only with a mirror.
roles/clamav/README.md explains every decision, and the memory clamd needs.

How a change is checked. clamd and freshclam have no configuration test,
and clamconf reports a parse error but exits 0, so clamav-checkconf runs
clamconf and fails on any ERROR or WARNING. Each configuration file is
checked before it is written (``checked_put``); any change runs "Check ClamAV
configuration" on the whole of /etc/clamav before clamd or freshclam
restarts (clamd has no configuration reload).

roles/clamav/ does the same steps, in the same order, under the same names:
its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings

#: The role's checker, installed by "Render the ClamAV configuration checker".
CHECKCONF = "/usr/local/lib/hopthu/clamav-checkconf"


#: roles/clamav/tasks/main.yml's reset step, the same shell.
RESET_ONCE_SCRIPT = (
    "systemctl is-failed --quiet clamav-freshclam-once.service || exit 0; "
    "systemctl reset-failed clamav-freshclam-once.service && echo changed"
)


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_mx host)."""
    values = host_settings()
    mirrors = bool(values["clamav__freshclam_private_mirrors"])

    apt.packages(
        name="Install ClamAV",
        packages=values["clamav__packages"],
        present=True,
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
        name="Render the ClamAV configuration checker",
        template="usr/local/lib/hopthu/clamav-checkconf.j2",
        dest="/usr/local/lib/hopthu/clamav-checkconf",
        user="root",
        group="root",
        mode="0755",
        validate="sh -n %s",
        variables=values,
    )
    # Debian's tmpfiles.d entry makes it clamav:clamav 0755 at boot;
    # freshclam (as clamav) writes the official databases here.
    files.directory(
        name="Create the signature directory",
        path="/var/lib/clamav",
        present=True,
        user="clamav",
        group="clamav",
        mode="0755",
    )
    clamd_conf = put_template(
        name="Render clamd configuration",
        template="etc/clamav/clamd.conf.j2",
        dest="/etc/clamav/clamd.conf",
        user="root",
        group="root",
        mode="0644",
        validate="/usr/local/lib/hopthu/clamav-checkconf clamd %s",
        variables=values,
    )
    freshclam_conf = put_template(
        name="Render freshclam configuration",
        template="etc/clamav/freshclam.conf.j2",
        dest="/etc/clamav/freshclam.conf",
        user="root",
        group="root",
        mode="0644",
        validate="/usr/local/lib/hopthu/clamav-checkconf freshclam %s",
        variables=values,
    )
    signatures = put_template(
        name="Render the custom signature database",
        template="var/lib/clamav/hopthu.hdb.j2",
        dest="/var/lib/clamav/hopthu.hdb",
        user="root",
        group="clamav",
        mode="0644",
        variables=values,
    )
    files.directory(
        name="Create the clamd unit drop-in directory",
        path="/etc/systemd/system/clamav-daemon.service.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    service_dropin = put_template(
        name="Render the clamd unit drop-in",
        template="etc/systemd/system/clamav-daemon.service.d/hopthu.conf.j2",
        dest="/etc/systemd/system/clamav-daemon.service.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    files.directory(
        name="Create the clamd socket drop-in directory",
        path="/etc/systemd/system/clamav-daemon.socket.d",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    socket_dropin = put_template(
        name="Render the clamd socket drop-in",
        template="etc/systemd/system/clamav-daemon.socket.d/hopthu.conf.j2",
        dest="/etc/systemd/system/clamav-daemon.socket.d/hopthu.conf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    # Now, not at the end: the units are enabled and started below with the
    # drop-ins in force (without them a host with only hopthu.hdb skips clamd).
    systemd.daemon_reload(
        name="Reload systemd units after a drop-in change",
        _if=any_changed(service_dropin, socket_dropin),
    )
    systemd.service(
        name="Enable and start the clamd socket",
        service="clamav-daemon.socket",
        running=True,
        enabled=True,
    )
    systemd.service(
        name="Enable and start clamd",
        service="clamav-daemon.service",
        running=True,
        enabled=True,
    )
    # Without a mirror freshclam could only fail against clamav.net, which the
    # hosts cannot reach: it is stopped and disabled.
    systemd.service(
        name="Start freshclam, or stop it when no mirror is set",
        service="clamav-freshclam.service",
        running=mirrors,
        enabled=mirrors,
    )
    # Debian's daily one-shot update (and its run at boot) would race the
    # freshclam daemon for the databases, or fail without a mirror.
    for unit in ("clamav-freshclam-once.timer", "clamav-freshclam-once.service"):
        systemd.service(
            name="Disable the one-shot freshclam units",
            service=unit,
            running=False,
            enabled=False,
        )
    # The package runs the one-shot update once at install, which fails
    # without a mirror and leaves the unit "failed": clear that record. Read
    # while the run is prepared; on a fresh host the install happens in this
    # run, so the step runs (and does nothing if the unit did not fail).
    state_before = host.get_fact(
        Command, "dpkg-query -W -f='${Status} ' clamav-freshclam 2>/dev/null; "
                 "systemctl is-failed clamav-freshclam-once.service 2>/dev/null || true")
    fresh = "install ok installed" not in (state_before or "")
    server.shell(
        name="Forget the failed first run of the one-shot freshclam unit",
        commands=[RESET_ONCE_SCRIPT],
        _if=lambda: fresh or (state_before or "").strip().endswith("failed"),
    )

    # --- What the role's handlers do, in their order, only after a change ---------

    server.shell(
        name="Check ClamAV configuration",
        commands=[CHECKCONF],
        _if=any_changed(clamd_conf, freshclam_conf, signatures, service_dropin, socket_dropin),
    )
    # Restarting the socket stops clamd, which requires it, and starts both
    # again on the new path. `systemctl restart` in a shell: pyinfra's
    # systemd.service decides between start and restart from what it saw
    # before the run, when a fresh host's clamd was not running yet.
    server.shell(
        name="Restart the clamd socket",
        commands=["systemctl restart clamav-daemon.socket"],
        _if=socket_dropin.did_change,
    )
    server.shell(
        name="Restart clamd",
        commands=["systemctl restart clamav-daemon.service"],
        _if=any_changed(clamd_conf, signatures, service_dropin, socket_dropin),
    )
    if mirrors:
        server.shell(
            name="Restart freshclam",
            commands=["systemctl restart clamav-freshclam.service"],
            _if=freshclam_conf.did_change,
        )
