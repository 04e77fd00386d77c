"""The node_exporter deploy: each monitored host's own metrics (Art. 11.1).

Where it sits. On every mail, backup and monitor host, beside the services it
watches. The monitor host (roles/prometheus) scrapes it over the internal
network: disks, memory, load, the state of the mail daemons' systemd units,
and the *.prom files other roles and tools leave in its textfile directory
(Rspamd's and clamd's health from the rspamd deploy; the backups' last
success, later). Mail does not pass through it.

What it owns. /etc/default/prometheus-node-exporter, whole: the arguments of
Debian's unit. The unit itself is Debian's.

How a change is checked. The settings check validates every value before any
host is touched; the exporter has no checker of its own. A change restarts
it, and a failed start fails the run. roles/node_exporter/README.md says more.

roles/node_exporter/ does the same steps, in the same order, under the same
names: its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

from pyinfra.operations import apt, server, systemd

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings


def apply() -> None:
    """Converge the current host (deploy.py calls it for every monitored host)."""
    values = host_settings()

    apt.packages(
        name="Install the node exporter",
        packages=values["node_exporter__packages"],
        present=True,
        no_recommends=True,
    )
    arguments = put_template(
        name="Render the node exporter arguments",
        template="etc/default/prometheus-node-exporter.j2",
        dest="/etc/default/prometheus-node-exporter",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    systemd.service(
        name="Enable and start the node exporter",
        service="prometheus-node-exporter.service",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, only after a change ----------------------------
    # `systemctl` in a shell: pyinfra's systemd.service decides between start and
    # restart from what it saw before the run, when a fresh host's daemon was not
    # installed yet (and Debian's package then started it on its old arguments).

    server.shell(
        name="Restart the node exporter",
        commands=["systemctl restart prometheus-node-exporter.service"],
        _if=arguments.did_change,
    )
