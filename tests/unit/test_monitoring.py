"""Monitoring from Debian packages (Art. 11.1), proven without hosts.

- promtool accepts the alert rules and Prometheus's configuration that every
  monitor host of every inventory gets, on each Debian release, and the
  rules fire as intended on made-up series (``promtool test rules``);
- the monitor host scrapes every mail and backup host of its inventory, at
  its address, with the exporters its groups run, on the ports their roles
  listen on; the outside probes cover every published service;
- the exporters' ports are open to the internal zone only, on the rendered
  ruleset;
- the filter health collector writes Rspamd's metrics and whether Rspamd
  and clamd answer, against a stand-in controller and clamd;
- BackupTooOld reads the series the backup tool writes to hopthu_backup.prom,
  as it writes them;
- the node exporter publishes the state of exactly the listed units.

promtool comes from Debian (``prometheus`` on Debian 12, ``promtool`` on
Debian 13; .ci/run installs it). Without it the promtool tests are skipped
and say so; everything else still runs.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from hopthu import inventory as inventory_mod
from hopthu.render import render
from hopthu.settings import Settings, load_host
from tests.infra import zones

pytestmark = pytest.mark.control("ART11-1-UPTIME")

INVENTORIES = ("lab", "staging", "production")
RELEASES = (12, 13)
RULES = "etc/prometheus/hopthu.rules.yml.j2"
CONFIG = "etc/prometheus/prometheus.yml.j2"
BLACKBOX = "etc/prometheus/blackbox.yml.j2"
RULES_PATH = "/etc/prometheus/hopthu.rules.yml"
#: The groups whose hosts the monitor watches (site.yml's node exporter play).
MONITORED = ("mail_mx", "mail_store", "mail_backup", "mail_monitor")


def hosts_of(inventory: str, group: str) -> list[str]:
    return inventory_mod.load(inventory).hosts_in(group)


def settings(inventory: str, host: str, release: int = 13) -> Settings:
    return load_host(inventory, host, extra_vars={"common__debian_major": release})


MONITORS = [(inv, host) for inv in INVENTORIES for host in hosts_of(inv, "mail_monitor")]
MONITOR_CASES = [(inv, host, release) for inv, host in MONITORS for release in RELEASES]
MONITOR_IDS = [f"{inv}-{host}-debian{release}" for inv, host, release in MONITOR_CASES]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is not installed, so the rules and the configuration cannot be checked "
            "here: apt-get install --no-install-recommends prometheus (Debian 12) or promtool "
            "(Debian 13), as .ci/run does"
        )
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120,
                          check=False)


def rendered_pair(inventory: str, host: str, release: int, tmp_path: Path) -> tuple[Path, Path]:
    """The host's rules and configuration, the configuration naming the rules beside it."""
    values = settings(inventory, host, release).values
    rules = tmp_path / "hopthu.rules.yml"
    rules.write_text(render(RULES, values), encoding="utf-8")
    config_text = render(CONFIG, values)
    assert RULES_PATH in config_text, f"prometheus.yml no longer names {RULES_PATH}"
    config = tmp_path / "prometheus.yml"
    # On the host the rules are at RULES_PATH, written (and checked) before
    # the configuration; here they are beside it.
    config.write_text(config_text.replace(RULES_PATH, str(rules)), encoding="utf-8")
    return rules, config


# --- promtool -------------------------------------------------------------------------------


@pytest.mark.parametrize(("inventory", "host", "release"), MONITOR_CASES, ids=MONITOR_IDS)
def test_promtool_accepts_the_alert_rules(
    inventory: str, host: str, release: int, tmp_path: Path
) -> None:
    rules, _ = rendered_pair(inventory, host, release, tmp_path)
    result = run_promtool("check", "rules", str(rules))
    assert result.returncode == 0, (
        f"promtool check rules refuses {RULES} as rendered for {inventory}/{host}:\n"
        f"{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize(("inventory", "host", "release"), MONITOR_CASES, ids=MONITOR_IDS)
def test_promtool_accepts_the_configuration_and_the_rules_it_names(
    inventory: str, host: str, release: int, tmp_path: Path
) -> None:
    _, config = rendered_pair(inventory, host, release, tmp_path)
    result = run_promtool("check", "config", str(config))
    assert result.returncode == 0, (
        f"promtool check config refuses {CONFIG} as rendered for {inventory}/{host}:\n"
        f"{result.stdout}{result.stderr}"
    )
    assert "1 rule files found" in result.stdout, result.stdout


#: Made-up series and the alerts they must raise (promtool's rule unit tests).
#: Times are relative to the start of the test; every series is sampled each minute.
RULE_TESTS = """
rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # The certificate on mail1:25 expires in 20 days, on mail1:993 in 60.
      - series: 'probe_ssl_earliest_cert_expiry{{host="mail1",instance="mail1.moj.gov.vn:25"}}'
        values: '{in_20_days}+0x30'
      - series: 'probe_ssl_earliest_cert_expiry{{host="mail1",instance="mail1.moj.gov.vn:993"}}'
        values: '{in_60_days}+0x30'
      # / on mail1 is 90 % full, /var on mail2 50 %.
      - series: 'node_filesystem_avail_bytes{{host="mail1",mountpoint="/",fstype="ext4"}}'
        values: '10+0x30'
      - series: 'node_filesystem_size_bytes{{host="mail1",mountpoint="/",fstype="ext4"}}'
        values: '100+0x30'
      - series: 'node_filesystem_avail_bytes{{host="mail2",mountpoint="/var",fstype="ext4"}}'
        values: '50+0x30'
      - series: 'node_filesystem_size_bytes{{host="mail2",mountpoint="/var",fstype="ext4"}}'
        values: '100+0x30'
      # mail1's last backup ran at time 0 minus two days; mail2's a minute ago.
      - series: 'hopthu_backup_last_success_timestamp_seconds{{host="mail1"}}'
        values: '-172800+0x30'
      - series: 'hopthu_backup_last_success_timestamp_seconds{{host="mail2"}}'
        values: '0+60x30'
      # clamd stops answering on mail1; Rspamd answers.
      - series: 'hopthu_clamd_up{{host="mail1"}}'
        values: '0+0x30'
      - series: 'hopthu_rspamd_up{{host="mail1"}}'
        values: '1+0x30'
      # Rspamd is down on mail2 (systemd says so too).
      - series: 'hopthu_rspamd_up{{host="mail2"}}'
        values: '0+0x30'
      - series: 'node_systemd_unit_state{{host="mail2",name="rspamd.service",state="active"}}'
        values: '0+0x30'
      - series: 'node_systemd_unit_state{{host="mail2",name="postfix.service",state="active"}}'
        values: '1+0x30'
      # mail1's deferred queue grows by 10 messages a minute from 200.
      - series: 'postfix_showq_message_age_seconds_count{{host="mail1",queue="deferred"}}'
        values: '200+10x70'
      # mail2's queue is large but steady.
      - series: 'postfix_showq_message_age_seconds_count{{host="mail2",queue="deferred"}}'
        values: '500+0x70'
      # The IMAPS probe of mail1 fails.
      - series: 'probe_success{{host="mail1",job="probe_imaps_banner",instance="mail1.moj.gov.vn:993"}}'
        values: '0+0x30'
    alert_rule_test:
      - eval_time: 30m
        alertname: CertificateExpiresSoon
        exp_alerts:
          - exp_labels: {{severity: warning, host: mail1, instance: "mail1.moj.gov.vn:25"}}
      - eval_time: 30m
        alertname: DiskAlmostFull
        exp_alerts:
          - exp_labels: {{severity: warning, host: mail1, mountpoint: /, fstype: ext4}}
      - eval_time: 30m
        alertname: BackupTooOld
        exp_alerts:
          - exp_labels: {{severity: critical, host: mail1}}
      - eval_time: 30m
        alertname: ClamavFailing
        exp_alerts:
          - exp_labels: {{severity: critical, host: mail1}}
      - eval_time: 30m
        alertname: RspamdFailing
        exp_alerts:
          - exp_labels: {{severity: critical, host: mail2}}
      - eval_time: 30m
        alertname: MailServiceDown
        exp_alerts:
          - exp_labels: {{severity: critical, host: mail2, name: rspamd.service, state: active}}
      - eval_time: 30m
        alertname: MailProbeFailed
        exp_alerts:
          - exp_labels: {{severity: critical, host: mail1, job: probe_imaps_banner,
                          instance: "mail1.moj.gov.vn:993"}}
      # The queue alert waits 30 minutes on a 30-minute trend.
      - eval_time: 20m
        alertname: MailQueueGrowing
        exp_alerts: []
      - eval_time: 70m
        alertname: MailQueueGrowing
        exp_alerts:
          - exp_labels: {{severity: warning, host: mail1}}
"""


def test_the_alert_rules_fire_on_the_failures_they_describe(tmp_path: Path) -> None:
    values = settings("lab", "backup1").values
    assert values["prometheus__cert_expiry_days"] == 21
    assert values["prometheus__disk_used_percent"] == 85
    # promtool compares annotations too; the expressions and labels are what is
    # tested here (test_every_alert_says_which_host_and_what_to_do reads the text).
    document = yaml.safe_load(render(RULES, values))
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules = tmp_path / "hopthu.rules.yml"
    rules.write_text(yaml.safe_dump(document), encoding="utf-8")
    tests = tmp_path / "hopthu.rules.test.yml"
    # promtool's test clock starts at Unix time 0.
    tests.write_text(RULE_TESTS.format(rules=rules, in_20_days=20 * 86400,
                                       in_60_days=60 * 86400), encoding="utf-8")
    result = run_promtool("test", "rules", str(tests))
    assert result.returncode == 0, (
        f"the alert rules do not fire as intended:\n{result.stdout}{result.stderr}"
    )


def backup_tool() -> Any:
    """hopthu-backup as the stores run it (roles/backup), loaded to call its metrics writer."""
    import importlib.util
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "hopthu_backup_metrics.py"
        path.write_text(render("usr/local/sbin/hopthu-backup.j2", {}), encoding="utf-8")
        spec = importlib.util.spec_from_file_location("hopthu_backup_metrics", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


#: The backup tool's state after a run (last.json), on promtool's clock,
#: which starts at Unix time 0: mail1's last success three days before,
#: then a failed attempt; mail2's success at 0; mail3 never succeeded.
BACKUP_STATES = {
    "mail1": {"repository": "ssh://borg@198.18.0.20:22/srv/borg/mail1", "result": "failed",
              "finished_at": "1969-12-31T23:00:00Z", "last_success_at": "1969-12-29T00:00:00Z"},
    "mail2": {"repository": "ssh://borg@198.18.0.20:22/srv/borg/mail2", "result": "ok",
              "finished_at": "1970-01-01T00:00:00Z", "last_success_at": "1970-01-01T00:00:00Z"},
    "mail3": {"repository": "ssh://borg@198.18.0.20:22/srv/borg/mail3", "result": "failed",
              "finished_at": "1969-12-31T23:00:00Z", "last_success_at": None},
}


def test_backup_too_old_reads_the_file_the_backup_tool_writes(tmp_path: Path) -> None:
    """The rule and hopthu_backup.prom agree: the metric names the rules read are written,
    and the series as the tool writes them (name, labels, Unix seconds) fire BackupTooOld
    for the store whose last success is too old, and only for it."""
    tool = backup_tool()
    values = settings("lab", "backup1").values
    document = yaml.safe_load(render(RULES, values))
    written = {host: tool.metrics_text(state) for host, state in BACKUP_STATES.items()}
    names = {line.split("{", 1)[0] for text in written.values()
             for line in text.splitlines() if line and not line.startswith("#")}
    read = {name for group in document["groups"] for rule in group["rules"]
            for name in re.findall(r"\bhopthu_backup_\w+", str(rule["expr"]))}
    assert read and read <= names, (
        f"the alert rules read {sorted(read - names)}, which hopthu-backup never writes "
        f"(it writes {sorted(names)})")
    series = []
    for host, text in written.items():
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name_labels, value = line.rsplit(" ", 1)
                # Prometheus adds the host label when it scrapes (prometheus.yml).
                name_labels = name_labels.replace("{", f'{{host="{host}",', 1)
                series.append(f"      - series: '{name_labels}'\n        values: '{value}+0x40'")
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules = tmp_path / "hopthu.rules.yml"
    rules.write_text(yaml.safe_dump(document), encoding="utf-8")
    tests = tmp_path / "backup.test.yml"
    tests.write_text(
        f"rule_files:\n  - {rules}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n"
        "    input_series:\n" + "\n".join(series) + "\n"
        "    alert_rule_test:\n"
        "      - eval_time: 30m\n"
        "        alertname: BackupTooOld\n"
        "        exp_alerts:\n"
        "          - exp_labels: {severity: critical, host: mail1,\n"
        f"                         repository: \"{BACKUP_STATES['mail1']['repository']}\"}}\n",
        encoding="utf-8")
    result = run_promtool("test", "rules", str(tests))
    assert result.returncode == 0, (
        f"BackupTooOld and hopthu_backup.prom disagree:\n{result.stdout}{result.stderr}\n"
        + tests.read_text(encoding="utf-8"))


def test_every_alert_says_which_host_and_what_to_do() -> None:
    rules = yaml.safe_load(render(RULES, settings("lab", "backup1").values))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {a["alert"] for a in alerts}
    assert {"ExporterDown", "MailServiceDown", "MailProbeFailed", "MailQueueGrowing",
            "RspamdFailing", "ClamavFailing", "CertificateExpiresSoon", "DiskAlmostFull",
            "BackupTooOld"} <= names
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert "{{ $labels.host }}" in alert["annotations"]["summary"], alert["alert"]
        assert "`" in alert["annotations"]["description"], (
            f"{alert['alert']}: the description should name a command to run next"
        )


# --- What the monitor host watches -----------------------------------------------------------


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_inventory_has_a_monitor_host_that_runs_no_mail_service(inventory: str) -> None:
    monitors = hosts_of(inventory, "mail_monitor")
    assert len(monitors) == 1, (
        f"inventories/{inventory}/hosts.yml: mail_monitor should hold one host, has {monitors}"
    )
    mail = set(hosts_of(inventory, "mail_mx")) | set(hosts_of(inventory, "mail_store"))
    assert not set(monitors) & mail, (
        f"{inventory}: the monitor host {monitors} is also a mail host; it must watch them "
        "from outside (roles/prometheus/README.md)"
    )


@pytest.mark.parametrize(("inventory", "monitor"), MONITORS)
def test_the_monitor_scrapes_every_monitored_host_at_its_address(
    inventory: str, monitor: str
) -> None:
    inv = inventory_mod.load(inventory)
    listed = {e["name"]: e for e in settings(inventory, monitor).values["prometheus__scrape_hosts"]}
    wanted = [h for h in inv.hosts if any(g in MONITORED for g in inv.host_groups(h))]
    assert sorted(listed) == sorted(wanted), (
        f"inventories/{inventory}/group_vars/mail_monitor.yml: prometheus__scrape_hosts lists "
        f"{sorted(listed)}, the inventory's mail, backup and monitor hosts are {sorted(wanted)}"
    )
    for host in wanted:
        assert listed[host]["address"] == inv.hosts[host].address, (
            f"{inventory}: prometheus__scrape_hosts gives {host} the address "
            f"{listed[host]['address']}, hosts.yml {inv.hosts[host].address}"
        )


@pytest.mark.parametrize(("inventory", "monitor"), MONITORS)
def test_the_monitor_scrapes_the_exporters_each_host_runs_on_their_ports(
    inventory: str, monitor: str
) -> None:
    values = settings(inventory, monitor).values
    ports = values["prometheus__exporter_ports"]
    for entry in values["prometheus__scrape_hosts"]:
        host = settings(inventory, entry["name"]).values
        runs = {"node": "node_exporter__port" in host,
                "postfix": "postfix_exporter__port" in host,
                "dovecot": bool(host.get("dovecot__metrics_port"))}
        assert sorted(entry["exporters"]) == sorted(k for k, v in runs.items() if v), (
            f"{inventory}: {entry['name']} runs {sorted(k for k, v in runs.items() if v)}, "
            f"prometheus__scrape_hosts says {entry['exporters']}"
        )
        for exporter, key in (("node", "node_exporter__port"),
                              ("postfix", "postfix_exporter__port"),
                              ("dovecot", "dovecot__metrics_port")):
            if runs[exporter]:
                assert host[key] == ports[exporter], (
                    f"{inventory}: {entry['name']} listens on {key} = {host[key]}, the monitor "
                    f"scrapes prometheus__exporter_ports.{exporter} = {ports[exporter]}"
                )


def scrape_jobs(inventory: str, monitor: str) -> dict[str, list[dict[str, Any]]]:
    config = yaml.safe_load(render(CONFIG, settings(inventory, monitor).values))
    return {job["job_name"]: job for job in config["scrape_configs"]}


@pytest.mark.parametrize(("inventory", "monitor"), MONITORS)
def test_the_outside_probes_cover_every_published_service(inventory: str, monitor: str) -> None:
    values = settings(inventory, monitor).values
    jobs = scrape_jobs(inventory, monitor)
    wanted = {"probe_smtp_starttls": set(), "probe_imaps_banner": set(), "probe_https_2xx": set()}
    for entry in values["dns__hosts"]:
        if "mx" in entry["services"]:
            wanted["probe_smtp_starttls"].add(f"{entry['name']}:25")
        if "imap" in entry["services"]:
            wanted["probe_imaps_banner"].add(f"{entry['name']}:993")
        if "web" in entry["services"]:
            wanted["probe_https_2xx"].add(
                f"https://{entry['name']}{values['prometheus__https_probe_path']}")
    for job, targets in wanted.items():
        got = {t for c in jobs[job]["static_configs"] for t in c["targets"]}
        assert got == targets, f"{inventory}: {job} probes {got}, the DNS publishes {targets}"
        assert jobs[job]["relabel_configs"][-1]["replacement"] == (
            f"127.0.0.1:{values['prometheus__blackbox_port']}")


def test_the_blackbox_exporter_listens_on_loopback_only() -> None:
    text = render("etc/default/prometheus-blackbox-exporter.j2", settings("lab", "backup1").values)
    assert re.search(r"--web\.listen-address=127\.0\.0\.1:9115\b", text), text


def test_the_smtp_probe_checks_starttls_before_it_quits() -> None:
    modules = yaml.safe_load(render(BLACKBOX, settings("lab", "backup1").values))["modules"]
    steps = modules["smtp_starttls"]["tcp"]["query_response"]
    assert steps[0] == {"expect": "^220 "}
    starttls = steps.index({"starttls": True})
    assert {"send": "STARTTLS\r"} in steps[:starttls]
    assert steps[-1] == {"send": "QUIT\r"}
    assert all(s["send"].endswith("\r") for s in steps if "send" in s), (
        "every SMTP command must end in CRLF: Postfix refuses bare newlines"
    )
    assert modules["imaps_banner"]["tcp"]["tls"] is True
    assert modules["https_2xx"]["http"]["fail_if_not_ssl"] is True


# --- The firewall: metrics for the internal zone only ---------------------------------------

EXPORTER_PORTS = {"mail_mx": ("tcp", 9154), "mail_store": ("tcp", 9900),
                  "mail_monitor": ("tcp", 9090)}


@pytest.mark.control("ART3-ZONES")
@pytest.mark.parametrize("inventory", INVENTORIES)
def test_metrics_ports_are_open_to_the_internal_zone_only(inventory: str) -> None:
    for host in inventory_mod.load(inventory).hosts:
        values = settings(inventory, host).values
        groups = list(values["common__host_groups"])
        plan = zones.plan(values, groups)
        expected = {("tcp", 9100)} | {p for g, p in EXPORTER_PORTS.items() if g in groups}
        assert expected <= plan.allowed("internal"), (
            f"{inventory}/{host}: the internal zone should reach {zones.fmt_ports(expected)}")
        metrics = {("tcp", 9100), *EXPORTER_PORTS.values(), ("tcp", 9115)}
        leaked = metrics & plan.allowed("internet")
        assert not leaked, f"{inventory}/{host}: the Internet reaches {zones.fmt_ports(leaked)}"


# --- The node exporter ------------------------------------------------------------------------


def node_args(values: dict[str, Any]) -> dict[str, str]:
    text = render("etc/default/prometheus-node-exporter.j2", values)
    (line,) = [line for line in text.splitlines() if line.startswith("ARGS=")]
    value = line.removeprefix('ARGS="').removesuffix('"')
    assert "\\" not in value and "'" not in value, "systemd passes $ARGS without a shell"
    return dict(arg.removeprefix("--").partition("=")[::2] for arg in value.split())


# The unit that runs Postfix's master on each release; the other one exists
# there too but is not the master (Debian 13's postfix@-.service stays
# inactive, and MailServiceDown fired for it in the lab).
POSTFIX_MASTER = {12: ("postfix@-.service", "postfix.service"),
                  13: ("postfix.service", "postfix@-.service")}


@pytest.mark.parametrize("release", RELEASES)
def test_the_node_exporter_publishes_exactly_the_listed_units(release: int) -> None:
    values = settings("lab", "mail1", release).values
    args = node_args(values)
    # node_exporter anchors the expression: ^(?:...)$
    include = re.compile(f"^(?:{args['collector.systemd.unit-include']})$")
    master, other = POSTFIX_MASTER[release]
    for unit in values["node_exporter__systemd_units"]:
        assert bool(include.match(unit)) == (unit != other), unit
    assert include.match(master)
    for unit in ("postfixXservice", "postfix.service.d", "chrony.service", "ssh.service",
                 "clamav-freshclam.service"):
        assert not include.match(unit), unit
    assert args["collector.textfile.directory"] == values["node_exporter__textfile_dir"]
    assert args["web.listen-address"] == f":{values['node_exporter__port']}"


# --- Dovecot's endpoint ------------------------------------------------------------------------


@pytest.mark.parametrize("release", RELEASES)
def test_dovecot_serves_its_metrics_on_both_releases(release: int) -> None:
    values = settings("lab", "mail1", release).values
    text = render("etc/dovecot/dovecot.conf.j2", values)
    assert re.search(r"service stats \{\n  inet_listener http \{\n    port = 9900\n", text)
    metrics = re.findall(r"^metric (\w+) \{\n  filter = (.+)$", text, flags=re.MULTILINE)
    assert [name for name, _ in metrics] == [
        "auth_success", "auth_failure", "imap_command", "mail_delivery"]
    assert not re.search(r"group_by.*user", text), "no metric may be grouped by user"
    off = render("etc/dovecot/dovecot.conf.j2", {**values, "dovecot__metrics_port": 0})
    assert "inet_listener http" not in off and "\nmetric " not in off


# --- The filter health collector -----------------------------------------------------------

RSPAMD_METRICS = """\
# HELP rspamd_build_info A metric with a constant '1' value labeled by version from which rspamd was built.
# TYPE rspamd_build_info gauge
rspamd_build_info{version="3.4"} 1
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1700000000
# HELP rspamd_scanned_total Scanned messages.
# TYPE rspamd_scanned_total counter
rspamd_scanned_total 42
# EOF
"""


class _Controller(BaseHTTPRequestHandler):
    """Rspamd's controller: /metrics for the right Password header, 403 otherwise."""

    password = "s3cret"
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Password"))
        if self.path != "/metrics" or self.headers.get("Password") != self.password:
            self.send_error(403)
            return
        body = RSPAMD_METRICS.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def controller() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Controller)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _clamd(path: Path, ready: threading.Event) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        ready.set()
        conn, _ = listener.accept()
        with conn:
            if conn.recv(64) == b"nPING\n":
                conn.sendall(b"PONG\n")


def collector(tmp_path: Path, port: int, clamd: Path) -> Path:
    """The lab MX host's collector, pointed at the stand-ins in tmp_path."""
    values = {**settings("lab", "mail1").values,
              "rspamd__controller_bind": f"127.0.0.1:{port}",
              "rspamd__antivirus_socket": str(clamd),
              "rspamd__metrics_textfile": str(tmp_path / "hopthu_filter.prom")}
    text = render("usr/local/lib/hopthu/filter-metrics.j2", values)
    password = tmp_path / "controller.password"
    password.write_text(_Controller.password + "\n")
    text = text.replace('"/etc/hopthu/rspamd/controller.password"', repr(str(password)))
    script = tmp_path / "filter-metrics"
    script.write_text(text)
    return script


def check_metrics(text: str) -> None:
    if shutil.which("promtool"):
        result = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                capture_output=True, timeout=60, check=False)
        assert "error" not in (result.stdout + result.stderr).lower(), result.stderr


def test_the_collector_publishes_rspamds_metrics_and_both_daemons_up(
    tmp_path: Path, controller: int
) -> None:
    clamd = tmp_path / "clamd.ctl"
    ready = threading.Event()
    threading.Thread(target=_clamd, args=(clamd, ready), daemon=True).start()
    assert ready.wait(5)
    script = collector(tmp_path, controller, clamd)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "hopthu_filter.prom").read_text()
    assert _Controller.seen[-1] == _Controller.password, "the Password header was not sent"
    assert "hopthu_rspamd_up 1\n" in text and "hopthu_clamd_up 1\n" in text, text
    assert "rspamd_scanned_total 42" in text
    assert "rspamd_process_start_time_seconds 1700000000" in text
    assert not re.search(r"^(# (HELP|TYPE) )?process_start_time_seconds", text, re.MULTILINE), (
        "Rspamd's process_start_time_seconds would clash with the node exporter's own")
    assert "# EOF" not in text
    assert not list(tmp_path.glob("*.tmp")), "the temporary file was left behind"
    check_metrics(text)


def test_the_collector_reports_both_daemons_down_when_nothing_answers(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    script = collector(tmp_path, closed_port, tmp_path / "no-clamd.ctl")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "hopthu_filter.prom").read_text()
    assert "hopthu_rspamd_up 0\n" in text and "hopthu_clamd_up 0\n" in text, text
    assert "did not answer" in result.stderr
    check_metrics(text)
