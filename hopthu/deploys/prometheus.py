"""The prometheus deploy: the monitor host (Art. 11.1: monitoring proves uptime).

Where it sits. On the mail_monitor host, outside the mail flow (the backup
host in every inventory; roles/prometheus/README.md says why). Prometheus
scrapes the exporters of the mail and backup hosts over the internal network,
and asks the blackbox exporter on this host to probe the published mail
services from outside the mail hosts: the SMTP banner and STARTTLS on 25,
IMAPS on 993, HTTPS on 443, with their certificates. It evaluates the alert
rules.

What it owns. /etc/prometheus/prometheus.yml, /etc/prometheus/hopthu.rules.yml
and /etc/prometheus/blackbox.yml, whole, and the arguments of Debian's two
units (/etc/default/prometheus, /etc/default/prometheus-blackbox-exporter).

How a change is checked. Each file is checked before it replaces the live one
(``checked_put``): the rules with ``promtool check rules``, the configuration
with ``promtool check config``, the probes with
``prometheus-blackbox-exporter --config.check``. A changed file reloads its
daemon (SIGHUP); changed arguments restart it.

roles/prometheus/ does the same steps, in the same order, under the same
names: its tasks, then its handlers (tests/unit/test_engine_shape.py checks it).
"""

from __future__ import annotations

from pyinfra.operations import apt, server, systemd
from pyinfra.operations.util import any_changed

from hopthu.deploys import put_template
from hopthu.deploys.mailhost import host_settings


def apply() -> None:
    """Converge the current host (deploy.py calls it for every mail_monitor host)."""
    values = host_settings()

    apt.packages(
        name="Install Prometheus and the blackbox exporter",
        packages=values["prometheus__packages"],
        present=True,
        no_recommends=True,
    )
    # First the rules: the configuration names them, and its check reads them.
    rules = put_template(
        name="Render the Prometheus alert rules",
        template="etc/prometheus/hopthu.rules.yml.j2",
        dest="/etc/prometheus/hopthu.rules.yml",
        user="root",
        group="root",
        mode="0644",
        validate="promtool check rules %s",
        variables=values,
    )
    config = put_template(
        name="Render the Prometheus configuration",
        template="etc/prometheus/prometheus.yml.j2",
        dest="/etc/prometheus/prometheus.yml",
        user="root",
        group="root",
        mode="0644",
        validate="promtool check config %s",
        variables=values,
    )
    arguments = put_template(
        name="Render the Prometheus arguments",
        template="etc/default/prometheus.j2",
        dest="/etc/default/prometheus",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    probes = put_template(
        name="Render the blackbox exporter probes",
        template="etc/prometheus/blackbox.yml.j2",
        dest="/etc/prometheus/blackbox.yml",
        user="root",
        group="root",
        mode="0644",
        validate="prometheus-blackbox-exporter --config.check --config.file=%s",
        variables=values,
    )
    blackbox_arguments = put_template(
        name="Render the blackbox exporter arguments",
        template="etc/default/prometheus-blackbox-exporter.j2",
        dest="/etc/default/prometheus-blackbox-exporter",
        user="root",
        group="root",
        mode="0644",
        variables=values,
    )
    systemd.service(
        name="Enable and start the blackbox exporter",
        service="prometheus-blackbox-exporter.service",
        running=True,
        enabled=True,
    )
    systemd.service(
        name="Enable and start Prometheus",
        service="prometheus.service",
        running=True,
        enabled=True,
    )

    # --- What the role's handlers do, in their order, only after a change ---------
    # `systemctl` in a shell: pyinfra's systemd.service decides between start and
    # restart from what it saw before the run, when a fresh host's daemon was not
    # installed yet (and Debian's package then started it on its old arguments).

    server.shell(
        name="Restart the blackbox exporter",
        commands=["systemctl restart prometheus-blackbox-exporter.service"],
        _if=blackbox_arguments.did_change,
    )
    server.shell(
        name="Reload the blackbox exporter",
        commands=["systemctl reload prometheus-blackbox-exporter.service"],
        # Not right after a restart, which read the new file anyway: a SIGHUP
        # that arrives before the new process handles it would end it.
        _if=lambda: probes.did_change() and not blackbox_arguments.did_change(),
    )
    server.shell(
        name="Restart Prometheus",
        commands=["systemctl restart prometheus.service"],
        _if=arguments.did_change,
    )
    server.shell(
        name="Reload Prometheus",
        commands=["systemctl reload prometheus.service"],
        # Not right after a restart (as above; Debian 13's unit, Restart=on-abnormal,
        # would not start a Prometheus that SIGHUP ended).
        _if=lambda: any_changed(rules, config)() and not arguments.did_change(),
    )
