"""The settings of the `prometheus` role: the monitor host (roles/prometheus/defaults/main.yml)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from hopthu.schema.base import CrossCheck, SettingsModel, Strict
from hopthu.schema.dns import InventoryHost
from hopthu.schema.mailtypes import Percent
from hopthu.schema.types import (
    DebianPackage,
    DomainName,
    HostName,
    Port,
    _whole_range,
    checked,
)

# Prometheus's own duration form (one number, one unit): 90d, 12w, 1y.
_DURATION = re.compile(r"^[1-9][0-9]*(h|d|w|y)$")


def _retention(value: str) -> None:
    if not _DURATION.match(value):
        raise ValueError("is not a Prometheus retention time")


Retention = checked(
    str,
    "a Prometheus duration of hours, days, weeks or years: a whole number and one of "
    "h, d, w, y, e.g. 90d or 1y",
    _retention,
)


ScrapeSeconds = checked(
    int, "a whole number of seconds from 10 to 300, e.g. 30", _whole_range(10, 300)
)
ProbeSeconds = checked(
    int, "a whole number of seconds from 5 to 120, e.g. 20", _whole_range(5, 120)
)
CertDays = checked(
    int, "a whole number of days from 1 to 365, e.g. 21", _whole_range(1, 365)
)
BackupHours = checked(
    int, "a whole number of hours from 1 to 720 (30 days), e.g. 26", _whole_range(1, 720)
)
QueueMessages = checked(
    int, "a whole number of messages from 1 to 1000000, e.g. 100", _whole_range(1, 1_000_000)
)

_URL_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


def _url_path(value: str) -> None:
    if not _URL_PATH.match(value):
        raise ValueError("is not a URL path")


UrlPath = checked(
    str,
    "a URL path starting with '/', of letters, digits and . _ ~ / -, "
    "e.g. /.well-known/autoconfig/mail/config-v1.1.xml",
    _url_path,
)

#: The exporters the monitor host knows how to scrape, each at the port
#: prometheus__exporter_ports gives it.
Exporter = Literal["node", "postfix", "dovecot"]


class ScrapeHost(Strict):
    """One host the monitor scrapes: its inventory name, its address, its exporters."""

    name: InventoryHost
    address: HostName
    exporters: Annotated[list[Exporter], Field(min_length=1)]


class ExporterPorts(Strict):
    """The port of each exporter on the monitored hosts."""

    node: Port
    postfix: Port
    dovecot: Port


class PrometheusSettings(SettingsModel):
    """Prometheus and the blackbox exporter: the monitor host (Art. 11.1).

    Debian's Prometheus scrapes every mail and backup host's exporters over
    the internal network and evaluates the alert rules (a service down, the
    mail queue growing, a certificate expiring within three weeks, the last
    backup too old, a disk over 85 %, Rspamd or clamd failing). Debian's
    blackbox exporter, on the same host, probes the published mail services
    from outside the mail hosts: the SMTP banner and STARTTLS on port 25,
    IMAPS on 993, HTTPS on 443. roles/prometheus/README.md explains each
    choice.
    """

    namespace = "prometheus"

    prometheus__packages: list[DebianPackage] = Field(
        description=(
            "Debian's Prometheus (with promtool, which checks the configuration and the "
            "rules before they are written) and blackbox exporter."
        )
    )
    prometheus__port: Port = Field(
        description=(
            "The port of Prometheus's web interface and API (9090); the firewall opens it to "
            "the internal zone only (the 'prometheus' service)."
        )
    )
    prometheus__blackbox_port: Port = Field(
        description=(
            "The blackbox exporter's port (9115), on loopback only: only Prometheus on the "
            "same host asks it to probe."
        )
    )
    prometheus__retention: Retention = Field(
        description="How long Prometheus keeps the samples (--storage.tsdb.retention.time)."
    )
    prometheus__scrape_interval_sec: ScrapeSeconds = Field(
        description=(
            "Seconds between two scrapes of every target and two evaluations of the rules."
        )
    )
    prometheus__probe_timeout_sec: ProbeSeconds = Field(
        description=(
            "Seconds one outside probe may take (the SMTP one waits for postscreen's "
            "greeting delay, 6 s, before the real banner); shorter than "
            "prometheus__scrape_interval_sec."
        )
    )
    prometheus__scrape_hosts: list[ScrapeHost] = Field(
        description=(
            "The hosts whose exporters the monitor scrapes, each {name, address, exporters}: "
            "the inventory name (the 'host' label of every metric and alert), the address on "
            "the internal network, and some of node, postfix, dovecot. Set per environment; "
            "tests/unit/test_monitoring.py checks it against the inventory."
        )
    )
    prometheus__exporter_ports: ExporterPorts = Field(
        description=(
            "The port of each exporter on the monitored hosts: node_exporter__port, "
            "postfix_exporter__port and dovecot__metrics_port of those hosts (written out: "
            "their roles run in other plays)."
        )
    )
    prometheus__probe_helo: DomainName = Field(
        description="The name the SMTP probe gives in EHLO: the monitor host's own name."
    )
    prometheus__https_probe_path: UrlPath = Field(
        description=(
            "The path the HTTPS probe asks for on the web host: a static file, so the probe "
            "never meets the password portal's rate limit."
        )
    )
    prometheus__cert_expiry_days: CertDays = Field(
        description=(
            "CertificateExpiresSoon fires when a probed certificate expires within this many "
            "days."
        )
    )
    prometheus__disk_used_percent: Percent = Field(
        description="DiskAlmostFull fires when a filesystem is fuller than this percentage."
    )
    prometheus__backup_max_age_hours: BackupHours = Field(
        description=(
            "BackupTooOld fires when a host's last successful backup "
            "(hopthu_backup_last_success_timestamp_seconds) is older than this many hours."
        )
    )
    prometheus__queue_max_messages: QueueMessages = Field(
        description=(
            "MailQueueGrowing fires when an MX host's queue holds more messages than this "
            "and has kept growing for 30 minutes."
        )
    )

    def cross_checks(self) -> Iterator[CrossCheck]:
        if self.prometheus__probe_timeout_sec >= self.prometheus__scrape_interval_sec:
            yield CrossCheck(
                ("prometheus__probe_timeout_sec",), self.prometheus__probe_timeout_sec,
                f"is not shorter than prometheus__scrape_interval_sec = "
                f"{self.prometheus__scrape_interval_sec}: Prometheus refuses a scrape timeout "
                "longer than the interval",
                f"fewer than {self.prometheus__scrape_interval_sec} seconds",
            )
        seen: set[str] = set()
        for index, entry in enumerate(self.prometheus__scrape_hosts):
            if entry.name in seen:
                yield CrossCheck(
                    ("prometheus__scrape_hosts", index, "name"), entry.name,
                    "is listed twice: each host's metrics would be scraped twice",
                    "each inventory host once",
                )
            seen.add(entry.name)
            if len(set(entry.exporters)) != len(entry.exporters):
                yield CrossCheck(
                    ("prometheus__scrape_hosts", index, "exporters"), entry.exporters,
                    "names an exporter twice", "each of node, postfix, dovecot at most once",
                )
