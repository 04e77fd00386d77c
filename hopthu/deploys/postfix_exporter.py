"""The postfix_exporter deploy: the mail queue and Postfix's log as metrics (Art. 11.1).

Where it sits. On every MX host, beside Postfix. It reads the queue from
Postfix's showq service and follows the mail log rsyslog writes; the monitor
host scrapes it over the internal network (MailQueueGrowing,
PostfixQueueUnreadable). Mail does not pass through it.

What it owns. /etc/default/prometheus-postfix-exporter, whole: the arguments
of Debian's unit, which runs it as prometheus with the groups adm (the log)
and postdrop (the showq socket).

How a change is checked. The settings check validates every value before any
host is touched; the exporter has no checker. A change restarts it, and a
failed start fails the run. roles/postfix_exporter/README.md says more.

roles/postfix_exporter/ does the same steps, in the same order, under the
same names: its tasks, then its handlers (tests/unit/test_engine_shape.py
checks it).
"""

from __future__ import annotations

from pyinfra.operations import apt, server, systemd

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_mx host)."""
    values = host_settings()

    apt.packages(
        name="Install the Postfix exporter",
        packages=values["postfix_exporter__packages"],
        present=True,
        no_recommends=True,
    )
    arguments = put_template(
        name="Render the Postfix exporter arguments",
        template="etc/default/prometheus-postfix-exporter.j2",
        dest="/etc/default/prometheus-postfix-exporter",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    systemd.service(
        name="Enable and start the Postfix exporter",
        service="prometheus-postfix-exporter.service",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, only after a change ----------------------------
    # `systemctl` in a shell: pyinfra's systemd.service decides between start and
    # restart from what it saw before the run, when a fresh host's daemon was not
    # installed yet (and Debian's package then started it on its old arguments).

    server.shell(
        name="Restart the Postfix exporter",
        commands=["systemctl restart prometheus-postfix-exporter.service"],
        _if=arguments.did_change,
    )
