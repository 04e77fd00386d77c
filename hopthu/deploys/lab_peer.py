"""The lab_peer deploy: "the Internet" of the lab, on the lab_peer hosts only.

Where it sits. The ministry's mail hosts talk to the world through two
things this host plays: DNS and a foreign MTA. NSD answers, with authority,
for the ministry's domain (the very records ``hopthu dns`` tells the
ministry's DNS administrator to publish: MX, SPF, DMARC, MTA-STS, TLS-RPT,
client SRV and autoconfig names), for the peer's own domain peer.test, and
for the lab network's reverse zone; every lab host's resolver forwards those
zones here (``common__resolver_forward_zones``). Postfix receives mail for
peer.test into local maildirs and sends like any Internet MTA, finding the
ministry's MX in that DNS: the end-to-end tests of Art. 2 (mail flows both
ways) and Art. 11.5 (no open relay) run from here, outside the ministry's
internal zone.

What it owns. Whole files, each rendered from one template under
templates/lab_peer/ at the mirrored path: /etc/nsd/nsd.conf, the three zone
files in /etc/nsd/zones/, /etc/postfix/main.cf and the zone checker
/usr/local/sbin/hopthu-checkzone; and the local mailbox users.
roles/lab_peer/README.md says which files replace Debian's.

How a change is checked. nsd.conf is checked with ``nsd-checkconf`` and each
zone with ``nsd-checkzone`` before it is written (``checked_put``, the
counterpart of Ansible's ``validate:``), so NSD never reads a file it would
refuse. The last steps, run only when a file changed (``_if=``), check the
whole configuration again before NSD restarts or reloads, and run ``postfix
check`` before Postfix reloads.

roles/lab_peer/ does the same steps, in the same order, under the same
names: its tasks, then its handlers (tests/unit/test_engine_shape.py checks
it).
"""

from __future__ import annotations

from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template, settings


def apply() -> None:
    """Converge the current host (deploy.py calls it for the lab_peer hosts)."""
    values = settings()

    # NSD's package starts the daemon with Debian's configuration, which
    # listens on every address and so fails beside unbound on 127.0.0.1:53;
    # the install succeeds anyway, and NSD is started below with this
    # deploy's configuration.
    packages = apt.packages(
        name="Install the lab peer's packages",
        packages=list(values["lab_peer__packages"]),
        present=True,
    )

    # --- DNS: NSD, authoritative for the lab's zones ------------------------------

    put_template(
        name="Render zone file checker",
        template="lab_peer/usr/local/sbin/hopthu-checkzone.j2",
        dest="/usr/local/sbin/hopthu-checkzone",
        user="root",
        group="root",
        mode="0755",
        variables=values,
    )
    files.directory(
        name="Create the NSD zone directory",
        path="/etc/nsd/zones",
        present=True,
        user="root",
        group="root",
        mode="0755",
    )
    ministry_zone = put_template(
        name="Render the ministry's zone",
        template="lab_peer/etc/nsd/zones/ministry.zone.j2",
        dest="/etc/nsd/zones/ministry.zone",
        user="root",
        group="root",
        mode="0644",
        validate="/usr/local/sbin/hopthu-checkzone %s",
        variables=values,
    )
    peer_zone = put_template(
        name="Render the peer's zone",
        template="lab_peer/etc/nsd/zones/peer.zone.j2",
        dest="/etc/nsd/zones/peer.zone",
        user="root",
        group="root",
        mode="0644",
        validate="/usr/local/sbin/hopthu-checkzone %s",
        variables=values,
    )
    reverse_zone = put_template(
        name="Render the lab network's reverse zone",
        template="lab_peer/etc/nsd/zones/reverse.zone.j2",
        dest="/etc/nsd/zones/reverse.zone",
        user="root",
        group="root",
        mode="0644",
        validate="/usr/local/sbin/hopthu-checkzone %s",
        variables=values,
    )
    nsd_conf = put_template(
        name="Render NSD configuration",
        template="lab_peer/etc/nsd/nsd.conf.j2",
        dest="/etc/nsd/nsd.conf",
        user="root",
        group="root",
        mode="0644",
        validate="nsd-checkconf %s",
        variables=values,
    )
    # After that failed start at install, systemd retried until its start
    # limit and now refuses to start NSD for a while: forget those failures,
    # once, after the packages were installed.
    server.shell(
        name="Clear NSD's failed starts from the package install",
        commands=["systemctl reset-failed nsd.service"],
        _if=packages.did_change,
    )
    systemd.service(
        name="Enable and start NSD",
        service="nsd.service",
        running=True,
        enabled=True,
    )

    # --- Mail: a plain foreign Postfix --------------------------------------------

    for user in values["lab_peer__mailboxes"]:
        server.user(
            name="Create the local mailbox users",
            user=user,
            shell="/usr/sbin/nologin",
            create_home=True,
            present=True,
        )
    main_cf = put_template(
        name="Render Postfix main.cf",
        template="lab_peer/etc/postfix/main.cf.j2",
        dest="/etc/postfix/main.cf",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    systemd.service(
        name="Enable and start Postfix",
        service="postfix.service",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, in their order, only after a change -----------

    server.shell(
        name="Check NSD configuration",
        commands=["nsd-checkconf /etc/nsd/nsd.conf"],
        _if=nsd_conf.did_change,
    )
    # NSD reads its listening addresses only when it starts.
    systemd.service(
        name="Restart NSD",
        service="nsd.service",
        running=True,
        restarted=True,
        _if=nsd_conf.did_change,
    )
    # SIGHUP: NSD reads the zone files that changed.
    server.shell(
        name="Reload NSD zones",
        commands=["systemctl reload-or-restart nsd.service"],
        _if=any_changed(ministry_zone, peer_zone, reverse_zone),
    )
    server.shell(
        name="Check Postfix configuration",
        commands=["postfix check"],
        _if=main_cf.did_change,
    )
    server.shell(
        name="Reload Postfix",
        commands=["systemctl reload-or-restart postfix.service"],
        _if=main_cf.did_change,
    )
