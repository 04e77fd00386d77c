"""The settings of the `node_exporter` role (roles/node_exporter/defaults/main.yml)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from hopthu.schema.base import SettingsModel
from hopthu.schema.mailtypes import AbsolutePath, ServiceUnit
from hopthu.schema.types import DebianPackage, Port


class NodeExporterSettings(SettingsModel):
    """The node exporter: each monitored host's own metrics (Art. 11.1).

    Debian's prometheus-node-exporter on every mail, backup and monitor host:
    disks, memory, load, the state of the mail daemons' systemd units, and the
    text files other roles and tools leave for it (Rspamd's and clamd's health,
    the stores' last backup). The monitor host scrapes it over the
    internal network; roles/node_exporter/README.md explains each choice.
    """

    namespace = "node_exporter"

    node_exporter__packages: list[DebianPackage] = Field(
        description=(
            "Debian's node exporter, and dbus: its systemd collector asks systemd over the "
            "system bus."
        )
    )
    node_exporter__port: Port = Field(
        description=(
            "The TCP port the exporter listens on (9100, Prometheus's registered port); the "
            "firewall opens it to the internal zone only (the 'metrics' service), and "
            "prometheus__exporter_ports.node on the monitor host names the same."
        )
    )
    node_exporter__textfile_dir: AbsolutePath = Field(
        description=(
            "The directory of the textfile collector: every *.prom file in it is published "
            "with the host's metrics (Debian's default, which the package creates). Rspamd's "
            "and clamd's health (rspamd__metrics_textfile) and the stores' last backup "
            "(backup__metrics_textfile) are written here."
        )
    )
    node_exporter__systemd_units: Annotated[list[ServiceUnit], Field(min_length=1)] = Field(
        description=(
            "The systemd units whose state the exporter publishes "
            "(node_systemd_unit_state); the alert MailServiceDown fires for any of them "
            "that is not active. A unit a host does not have is simply not published."
        )
    )
