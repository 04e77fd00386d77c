"""The settings of the `postfix_exporter` role (roles/postfix_exporter/defaults/main.yml)."""

from __future__ import annotations

from pydantic import Field

from hopthu.schema.base import SettingsModel
from hopthu.schema.mailtypes import AbsolutePath
from hopthu.schema.types import DebianPackage, Port


class PostfixExporterSettings(SettingsModel):
    """The Postfix exporter: the mail queue and Postfix's log, as metrics (Art. 11.1).

    Debian's prometheus-postfix-exporter on every MX host: the size and age of
    each queue (from Postfix's showq service) and counters read from the mail
    log (connections, rejections, deliveries, deferrals). The monitor host
    scrapes it over the internal network; roles/postfix_exporter/README.md
    explains each choice.
    """

    namespace = "postfix_exporter"

    postfix_exporter__packages: list[DebianPackage] = Field(
        description="Debian's Postfix exporter (prometheus-postfix-exporter)."
    )
    postfix_exporter__port: Port = Field(
        description=(
            "The TCP port the exporter listens on (9154, its registered port); the firewall "
            "opens it to the internal zone only (the 'postfix-exporter' service), and "
            "prometheus__exporter_ports.postfix on the monitor host names the same."
        )
    )
    postfix_exporter__showq_path: AbsolutePath = Field(
        description=(
            "Postfix's showq socket, which lists the queue (Debian's Postfix: "
            "/var/spool/postfix/public/showq)."
        )
    )
    postfix_exporter__logfile: AbsolutePath = Field(
        description=(
            "The mail log the exporter follows for its counters: Debian's rsyslog writes "
            "every mail.* line to /var/log/mail.log."
        )
    )
