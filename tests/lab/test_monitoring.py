"""Monitoring works end to end in the lab (Art. 11.1: monitoring proves uptime).

The monitor host is backup1 (group mail_monitor, roles/prometheus). Every
check asks its Prometheus, over the lab's SSH, what it has seen, the way an
operator reads http://backup1:9090 from the internal zone:

- every exporter of every mail and backup host is scraped and up (node,
  Postfix, Dovecot's own endpoint), and Rspamd's metrics and clamd's health
  arrive through the node exporter's textfile collector;
- the outside probes pass from backup1: the SMTP banner and STARTTLS on 25,
  IMAPS on 993, HTTPS on 443, each certificate verified against the lab CA
  and valid for longer than the alert's 21 days;
- the alert rules are loaded, evaluate without error, and none fires on a
  healthy lab;
- stopping clamd on mail1 raises ClamavFailing, and starting it again clears
  hopthu_clamd_up;
- the metrics ports are open to the internal zone and dropped from the
  Internet (peer1), and the blackbox exporter is reachable from nowhere.

Bounds: the filter health timer runs every 30 s and Prometheus scrapes every
30 s, so a change shows in Prometheus within about 70 s; the waits below
allow 150 s (SEEN_WITHIN).
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any

import pytest
from vantage import probe, run

from hopthu.settings import load_host

pytestmark = [pytest.mark.lab, pytest.mark.control("ART11-1-UPTIME"),
              pytest.mark.usefixtures("converged_lab")]

MONITOR = "backup1"
MX = "mail1"
INTERNET_HOST = "peer1"
INTERNAL_HOST = "client1"
#: Seconds for a change on a host to show in Prometheus (timer 30 s + scrape 30 s + margin).
SEEN_WITHIN = 150
#: Seconds between two questions to Prometheus.
POLL = 5


def prometheus(path: str, **params: str) -> Any:
    """GET Prometheus's API on the monitor host (from the monitor host itself)."""
    args = " ".join(f"--data-urlencode {shlex.quote(f'{k}={v}')}" for k, v in params.items())
    result = run(MONITOR, f"curl -fsS --max-time 10 -G {args} http://127.0.0.1:9090{path}")
    assert result.rc == 0, (
        f"Prometheus on {MONITOR} did not answer {path}: {result.err.strip()}. Check "
        f"`systemctl status prometheus` on {MONITOR}."
    )
    answer = json.loads(result.out)
    assert answer.get("status") == "success", answer
    return answer["data"]


def query(expr: str) -> list[dict[str, Any]]:
    return prometheus("/api/v1/query", query=expr)["result"]


def value_of(expr: str) -> float | None:
    result = query(expr)
    return float(result[0]["value"][1]) if result else None


def wait_for(what: str, check: Callable[[], Any], timeout: float = SEEN_WITHIN) -> Any:
    """`check()` until it returns something true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(POLL)
    pytest.fail(f"{what}: not seen within {timeout:.0f} s (last answer: {last!r})")


def test_prometheus_scrapes_every_exporter_of_every_monitored_host() -> None:
    hosts = load_host("lab", MONITOR).values["prometheus__scrape_hosts"]
    wanted = {(job, h["name"]) for h in hosts for job in h["exporters"]}

    def healthy() -> set[tuple[str, str]]:
        targets = prometheus("/api/v1/targets")["activeTargets"]
        up = {(t["labels"]["job"], t["labels"].get("host")) for t in targets
              if t["health"] == "up"}
        return wanted <= up and up

    up = wait_for("every exporter up", healthy)
    assert wanted <= up, (
        f"targets not up: {sorted(wanted - up)}. On each host, `systemctl status` the "
        "exporter (prometheus-node-exporter, prometheus-postfix-exporter, dovecot) and "
        "check the firewall's internal zone."
    )


def test_rspamd_and_clamd_health_arrive_through_the_textfile_collector() -> None:
    wait_for("hopthu_rspamd_up{host=mail1} = 1",
             lambda: value_of(f'hopthu_rspamd_up{{host="{MX}"}}') == 1)
    wait_for("hopthu_clamd_up{host=mail1} = 1",
             lambda: value_of(f'hopthu_clamd_up{{host="{MX}"}}') == 1)
    assert value_of(f'rspamd_scanned_total{{host="{MX}"}}') is not None, (
        "Rspamd's own metrics are missing: read /var/lib/prometheus/node-exporter/"
        f"hopthu_filter.prom on {MX} and `journalctl -u hopthu-filter-metrics`"
    )
    assert value_of(f'node_textfile_scrape_error{{host="{MX}"}}') == 0


def test_the_mail_queue_and_dovecot_are_measured() -> None:
    wait_for("postfix_up{host=mail1} = 1", lambda: value_of(f'postfix_up{{host="{MX}"}}') == 1)
    assert query(f'postfix_showq_message_age_seconds_count{{host="{MX}",queue="deferred"}}'), (
        "the Postfix exporter does not publish the deferred queue")
    wait_for("Dovecot's endpoint scraped",
             lambda: value_of(f'up{{job="dovecot",host="{MX}"}}') == 1)
    result = run(MONITOR, "curl -fsS --max-time 10 http://198.18.0.10:9900/metrics")
    assert result.rc == 0 and "dovecot_" in result.out, (
        f"Dovecot's metrics endpoint on {MX} gave: {result.out[:300]!r} {result.err!r}")


@pytest.mark.parametrize("job", ["probe_smtp_starttls", "probe_imaps_banner", "probe_https_2xx"])
def test_the_outside_probes_pass_with_a_verified_certificate(job: str) -> None:
    wait_for(f"{job} succeeds", lambda: value_of(f'probe_success{{job="{job}"}}') == 1)
    expiry = value_of(f'probe_ssl_earliest_cert_expiry{{job="{job}"}}')
    assert expiry is not None, f"{job} reported no certificate: was TLS negotiated?"
    days = (expiry - time.time()) / 86400
    assert days > 21, f"{job}: the certificate expires in {days:.0f} days"


def test_the_alert_rules_are_loaded_and_none_fires_on_a_healthy_lab() -> None:
    groups = prometheus("/api/v1/rules")["groups"]
    names = {g["name"] for g in groups}
    assert {"hopthu-availability", "hopthu-mail", "hopthu-capacity"} <= names, names
    broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"]
              if r.get("health") not in ("ok", "unknown")]
    assert not broken, f"rules that fail to evaluate: {broken}"
    firing = [(a["labels"]["alertname"], a["labels"].get("host"))
              for a in prometheus("/api/v1/alerts")["alerts"] if a["state"] == "firing"]
    assert not firing, f"alerts firing on a healthy lab: {firing}"


def test_a_stopped_clamd_raises_clamav_failing_and_recovers() -> None:
    units = "clamav-daemon.socket clamav-daemon.service"
    assert run(MX, f"systemctl stop {units}").rc == 0
    try:
        wait_for("hopthu_clamd_up{host=mail1} = 0",
                 lambda: value_of(f'hopthu_clamd_up{{host="{MX}"}}') == 0)

        def pending_or_firing() -> list[str]:
            return [a["state"] for a in prometheus("/api/v1/alerts")["alerts"]
                    if a["labels"]["alertname"] == "ClamavFailing"
                    and a["labels"].get("host") == MX]

        wait_for("ClamavFailing pending or firing for mail1", pending_or_firing, timeout=90)
    finally:
        run(MX, f"systemctl start {units}")
    wait_for("hopthu_clamd_up{host=mail1} = 1 again",
             lambda: value_of(f'hopthu_clamd_up{{host="{MX}"}}') == 1, timeout=240)


@pytest.mark.control("ART3-ZONES")
def test_metrics_are_open_to_the_internal_zone_and_dropped_from_the_internet(
    lab_hosts: dict[str, str],
) -> None:
    cases = {MX: [9100, 9154, 9900], MONITOR: [9100, 9090]}
    for host, ports in cases.items():
        outside = probe(INTERNET_HOST, lab_hosts[host], ports)
        inside = probe(INTERNAL_HOST, lab_hosts[host], ports)
        for port in ports:
            assert outside[port] == "filtered", (
                f"{INTERNET_HOST} -> {host}:{port} was {outside[port]}: the Internet must not "
                "reach metrics")
            assert inside[port] == "open", (
                f"{INTERNAL_HOST} -> {host}:{port} was {inside[port]}: the internal zone "
                "should reach it")
    # The blackbox exporter probes any target it is given: loopback only.
    assert probe(INTERNAL_HOST, lab_hosts[MONITOR], [9115])[9115] != "open"
