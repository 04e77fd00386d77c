"""Monitoring (Art. 11.1): the exporters run and answer, the monitor host sees them.

Read-only. On each host of its group:

- every monitored host: the node exporter runs and publishes the listed
  systemd units and its textfile metrics;
- MX hosts: the Postfix exporter reads the queue (postfix_up 1), and the
  filter health collector keeps Rspamd's and clamd's health fresh;
- stores: Dovecot's metrics endpoint answers;
- the monitor host: Prometheus and the blackbox exporter run, the files on
  disk pass promtool, every scraped target is up and no alert fires.

Each exporter is asked on the host itself (loopback), so these checks do not
depend on the firewall, which tests/infra/test_firewall.py judges.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import pytest

pytestmark = pytest.mark.control("ART11-1-UPTIME")

#: How old the filter health file may be, in seconds: a few timer periods.
FRESH_SECONDS = 300


def metrics(host: Any, port: int) -> str:
    result = host.run(f"curl -fsS --max-time 10 http://127.0.0.1:{port}/metrics")
    assert result.rc == 0, (
        f"nothing answers http://127.0.0.1:{port}/metrics: {result.stderr.strip()}. "
        f"See `ss -ltnp | grep {port}` and the exporter's `systemctl status`."
    )
    return result.stdout


def sample(text: str, name: str) -> float | None:
    """The value of the first sample of `name` (with or without labels) in `text`."""
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return None


def check_active(host: Any, hostname: str, unit: str) -> None:
    service = host.service(unit)
    assert service.is_running, (
        f"{unit} is not running on {hostname}: see `systemctl status {unit}`; deploy again if "
        "it is not installed."
    )
    assert service.is_enabled, f"{unit} is not enabled on {hostname}: it would not start at boot"


def test_the_node_exporter_publishes_the_hosts_units_and_textfiles(
    host: Any, hostname: str, settings: dict[str, Any]
) -> None:
    if "node_exporter__port" not in settings:
        pytest.skip(f"{hostname} is not monitored (no node_exporter role)")
    check_active(host, hostname, "prometheus-node-exporter.service")
    text = metrics(host, settings["node_exporter__port"])
    assert 'node_systemd_unit_state{name="unbound.service",state="active"' in text, (
        "the node exporter publishes no unit states: its systemd collector needs D-Bus "
        "(`systemctl status dbus`) and the unit filter of /etc/default/prometheus-node-exporter"
    )
    assert sample(text, "node_textfile_scrape_error") == 0, (
        f"a *.prom file in {settings['node_exporter__textfile_dir']} does not parse: "
        "`journalctl -u prometheus-node-exporter | grep textfile`"
    )


def test_the_postfix_exporter_reads_the_queue(
    mx_host: Any, hostname: str, settings: dict[str, Any]
) -> None:
    check_active(mx_host, hostname, "prometheus-postfix-exporter.service")
    text = metrics(mx_host, settings["postfix_exporter__port"])
    assert sample(text, "postfix_up") == 1, (
        "postfix_up is not 1: the exporter cannot read Postfix's showq socket "
        f"({settings['postfix_exporter__showq_path']}); is Postfix running?"
    )
    assert "postfix_showq_message_age_seconds_count" in text


def test_the_filter_health_collector_keeps_rspamd_and_clamd_health_fresh(
    mx_host: Any, hostname: str, settings: dict[str, Any]
) -> None:
    check_active(mx_host, hostname, "hopthu-filter-metrics.timer")
    path = settings["rspamd__metrics_textfile"]
    age = mx_host.run(f"echo $(( $(date +%s) - $(stat -c %Y {shlex.quote(path)}) ))")
    assert age.rc == 0 and int(age.stdout) < FRESH_SECONDS, (
        f"{path} is missing or older than {FRESH_SECONDS} s: "
        "`systemctl status hopthu-filter-metrics.service`"
    )
    text = mx_host.file(path).content_string
    assert sample(text, "hopthu_rspamd_up") == 1, (
        "Rspamd's controller does not answer the collector: `systemctl status rspamd`")
    assert sample(text, "hopthu_clamd_up") == 1, (
        "clamd does not answer PING: `systemctl status clamav-daemon`")


def test_dovecot_serves_its_metrics(
    store_host: Any, hostname: str, settings: dict[str, Any]
) -> None:
    if not settings["dovecot__metrics_port"]:
        pytest.skip("dovecot__metrics_port is 0 on this host")
    text = metrics(store_host, settings["dovecot__metrics_port"])
    assert "dovecot_" in text, f"Dovecot's endpoint gave no dovecot_ metric: {text[:300]!r}"


def test_the_monitor_runs_prometheus_and_the_blackbox_exporter(
    monitor_host: Any, hostname: str
) -> None:
    for unit in ("prometheus.service", "prometheus-blackbox-exporter.service"):
        check_active(monitor_host, hostname, unit)
    for command in ("promtool check rules /etc/prometheus/hopthu.rules.yml",
                    "promtool check config /etc/prometheus/prometheus.yml",
                    ("prometheus-blackbox-exporter --config.check "
                     "--config.file=/etc/prometheus/blackbox.yml")):
        result = monitor_host.run(command)
        assert result.rc == 0, f"`{command}` fails on {hostname}: {result.stdout}{result.stderr}"


def api(host: Any, settings: dict[str, Any], path: str) -> Any:
    result = host.run(
        f"curl -fsS --max-time 10 http://127.0.0.1:{settings['prometheus__port']}{path}")
    assert result.rc == 0, f"Prometheus does not answer {path}: {result.stderr.strip()}"
    return json.loads(result.stdout)["data"]


def test_the_monitor_sees_every_target_up_and_no_alert_firing(
    monitor_host: Any, hostname: str, settings: dict[str, Any]
) -> None:
    # A freshly deployed monitor needs a scrape interval or two.
    deadline = time.monotonic() + 3 * settings["prometheus__scrape_interval_sec"]
    while True:
        targets = api(monitor_host, settings, "/api/v1/targets")["activeTargets"]
        down = sorted(f"{t['labels']['job']}:{t['labels'].get('host', t['labels']['instance'])}"
                      f" ({t.get('lastError') or t['health']})"
                      for t in targets if t["health"] != "up")
        if not down or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not down, f"targets {hostname}'s Prometheus cannot scrape or probe: {down}"
    firing = sorted(f"{a['labels']['alertname']} on {a['labels'].get('host', '?')}"
                    for a in api(monitor_host, settings, "/api/v1/alerts")["alerts"]
                    if a["state"] == "firing")
    assert not firing, f"alerts firing: {firing}; read http://{hostname}:9090/alerts"
