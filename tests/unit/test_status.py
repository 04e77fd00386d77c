"""`hopthu status`: every host's status, and what to do about each failure (issue 7, item 3).

The hosts are the lab inventory's, with their real settings; the SSH runner
is a fake that answers as the probe (hopthu/status_probe.py) would. The last
tests run the probe itself, on this machine, against fake commands, sockets
and files, and judge what it found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hopthu import cli, inventory, status, status_checks
from hopthu.audit import hosts
from hopthu.status_checks import FAIL, OK, SKIP, WARN, HostStatus, Plan

pytestmark = pytest.mark.control("ART11-1-UPTIME")

NOW = dt.datetime(2026, 1, 12, 8, 0, tzinfo=dt.UTC)


def certificate_pem(days_left: float, now: dt.datetime = NOW) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail1.moj.gov.vn")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(now + dt.timedelta(days=days_left))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CERT_PEM = certificate_pem(300)


@pytest.fixture(scope="module")
def lab_plans() -> dict[str, Plan]:
    inv = inventory.load("lab")
    return {p.target.name: p for p in status.plans(inv, list(inv.hosts))}


def healthy(plan: Plan, release: str = "13") -> dict[str, Any]:
    """What the probe answers on a host where everything is well."""
    spec = plan.spec
    facts: dict[str, Any] = {
        "now": NOW.timestamp(), "release": release, "units_error": "",
        "units": {u: {"Id": u, "LoadState": "loaded", "ActiveState": "active",
                      "SubState": "running", "Result": "success", "ConditionResult": "yes"}
                  for u in spec["units"]},
        "ports": {str(p): {"listening": ["0.0.0.0"], "error": ""} for p in spec["ports"]},
        "disks": [{"mount": "/", "path": "/", "used_percent": 41.0,
                   "free_bytes": 12_300_000_000, "size_bytes": 21_000_000_000}],
        "backup": {"last": None, "enabled_since": None},
    }
    if spec.get("queue"):
        facts["queue"] = {"total": 2, "deferred": 1}
    if spec.get("certificate"):
        facts["certificate"] = {"pem": CERT_PEM}
    if spec.get("rspamd_url"):
        facts["rspamd"] = ""
    if spec.get("clamd_socket"):
        facts["clamd"] = ""
    return facts


def answer(facts: dict[str, Any]) -> hosts.RunResult:
    return hosts.RunResult(0, json.dumps(facts) + "\n", "")


def judged(plan: Plan, facts: dict[str, Any], **options: Any) -> HostStatus:
    return status_checks.judge(plan, answer(facts), **options)


def by_id(host: HostStatus) -> dict[str, status_checks.Check]:
    return {c.id: c for c in host.checks}


Runner = Callable[[hosts.Target, str], hosts.RunResult]


def runner_from(answers: dict[str, hosts.RunResult]) -> Runner:
    def run(target: hosts.Target, script: str) -> hosts.RunResult:
        assert script.startswith("exec python3 -c "), "the probe runs with the host's python3"
        return answers[target.name]
    return run


def command(capsys: pytest.CaptureFixture[str], runner: Runner, *argv: str) -> tuple[int, str]:
    args = cli.build_parser().parse_args(["status", "--inventory", "lab", *argv])
    code = status.run(args, runner=runner)
    return code, capsys.readouterr().out


# --- what each host is asked --------------------------------------------------------


def test_each_host_is_asked_about_the_services_of_its_own_roles(
    lab_plans: dict[str, Plan],
) -> None:
    mail1 = lab_plans["mail1"]
    assert [s.key for s in mail1.services] == [
        "ssh", "unbound", "chrony", "updates", "redis", "clamd", "rspamd", "postfix",
        "dovecot", "nginx", "portal"]
    assert mail1.spec["ports"] == [22, 25, 443, 465, 587, 993, 995, 4190, 6379, 8087,
                                   11332, 11334]
    assert mail1.spec["rspamd_url"] == "http://localhost:11334/ping"
    assert mail1.spec["clamd_socket"] == "/run/clamav/clamd.ctl"
    assert mail1.spec["queue"] and mail1.spec["certificate"] == status_checks.CERTIFICATE
    backup1 = lab_plans["backup1"]
    assert [s.key for s in backup1.services] == ["ssh", "unbound", "chrony", "updates"]
    assert not {"queue", "certificate", "rspamd_url", "clamd_socket"} & set(backup1.spec)
    assert [s.key for s in lab_plans["peer1"].services][-2:] == ["peer-postfix", "nsd"]


def test_postfixs_unit_is_the_one_that_runs_its_master_on_each_release(
    lab_plans: dict[str, Plan],
) -> None:
    plan = lab_plans["mail1"]
    assert {"postfix.service", "postfix@-.service"} <= set(plan.spec["units"])
    facts = healthy(plan, release="12")
    facts["units"]["postfix.service"]["SubState"] = "exited"   # Debian 12's wrapper
    facts["units"]["postfix@-.service"]["ActiveState"] = "failed"
    check = by_id(judged(plan, facts))["service:postfix"]
    assert check.state == FAIL and "postfix@-.service is failed" in check.message


# --- a host where all is well --------------------------------------------------------


def test_a_healthy_host_is_all_ticks_and_the_command_exits_0(
    lab_plans: dict[str, Plan], capsys: pytest.CaptureFixture[str],
) -> None:
    answers = {name: answer(healthy(plan)) for name, plan in lab_plans.items()}
    code, out = command(capsys, runner_from(answers))
    assert code == 0, out
    assert "✓ Postfix is running (postfix.service) and answers on ports 25, 465, 587" in out
    assert "✓ Rspamd answers on its controller (http://localhost:11334/ping: pong)" in out
    assert "✓ ClamAV's clamd answers PING on /run/clamav/clamd.ctl" in out
    assert "✓ Postfix's mail queue holds 2 messages (1 deferred); the limit is 100" in out
    assert "✓ The TLS certificate /etc/hopthu/tls/host.fullchain.pem has 300 days left" in out
    assert "✓ The disk of / is 41% full (12.3 GB free)" in out
    assert "– No backups are set up on this host" in out
    assert "✗" not in out and "what to do" not in out
    assert out.rstrip().endswith("hopthu status: OK: 5 hosts without failures")
    hosts_in_order = [line.split(" (")[0] for line in out.splitlines()
                      if line and not line.startswith((" ", "hopthu status"))]
    assert hosts_in_order == ["mail1", "mail2", "backup1", "peer1", "client1"]


def test_json_output_carries_every_check_for_programs(
    lab_plans: dict[str, Plan], capsys: pytest.CaptureFixture[str],
) -> None:
    answers = {name: answer(healthy(plan)) for name, plan in lab_plans.items()}
    answers["mail2"] = hosts.RunResult(255, "", "ssh: connect to host 198.18.0.11 port 22: "
                                                "No route to host")
    code, out = command(capsys, runner_from(answers), "--format", "json")
    document = json.loads(out)
    assert code == 1 and document["ok"] is False and document["inventory"] == "lab"
    mail1, mail2 = document["hosts"][:2]
    assert mail1["ok"] and mail1["release"] == "13"
    assert {"id": "clamd", "state": "ok", "message": "ClamAV's clamd answers PING on "
            "/run/clamav/clamd.ctl", "fix": ""} in mail1["checks"]
    assert not mail2["ok"] and not mail2["reached"]
    assert mail2["checks"][0]["state"] == "fail" and "hopthu lab status" in mail2["checks"][0]["fix"]


# --- failing checks: each one says what to do ---------------------------------------


def _unit(facts: dict[str, Any], unit: str, **props: str) -> None:
    facts["units"][unit].update(props)


FAILURES: dict[str, tuple[Callable[[dict[str, Any]], None], str, str, tuple[str, ...]]] = {
    # case: (break the facts, check id, message part, parts of what to do)
    "dovecot-failed": (
        lambda f: _unit(f, "dovecot.service", ActiveState="failed", SubState="failed",
                        Result="exit-code"),
        "service:dovecot", ("Dovecot is not running (dovecot.service is failed/failed, "
        "result exit-code)"),
        ("`journalctl -u dovecot.service -n 50` on mail1", "`doveconf -n >/dev/null`",
         "`systemctl restart dovecot.service` on mail1")),
    "rspamd-start-limit": (
        lambda f: _unit(f, "rspamd.service", ActiveState="failed", Result="start-limit-hit"),
        "service:rspamd", "systemd gave up restarting rspamd.service after too many failures",
        ("`systemctl reset-failed rspamd.service && systemctl start rspamd.service` on mail1",
         "`rspamadm configtest`")),
    "postfix-not-installed": (
        lambda f: _unit(f, "postfix.service", LoadState="not-found", ActiveState="inactive"),
        "service:postfix", "Postfix is not installed on mail1 (systemd has no postfix.service)",
        (("deploy the postfix role: `hopthu deploy --engine ansible --inventory lab "
         "--limit mail1`"),)),
    "submissions-not-listening": (
        lambda f: f["ports"].update({"465": {"listening": [], "error": "nothing listens"}}),
        "service:postfix", "Postfix is running (postfix.service) but nothing listens on port 465",
        ("`postfix check` on mail1", "`systemctl restart postfix.service` on mail1")),
    "imaps-refuses": (
        lambda f: f["ports"].update({"993": {"listening": ["0.0.0.0"],
                                             "error": "0.0.0.0:993: Connection refused"}}),
        "service:dovecot", ("a connection from the host itself fails (0.0.0.0:993: "
        "Connection refused)"), ("`doveconf -n >/dev/null` on mail1",)),
    "rspamd-silent": (
        lambda f: f.update(rspamd="http://localhost:11334/ping: Connection refused"),
        "rspamd", ("Rspamd does not answer on its controller (http://localhost:11334/ping: "
        "Connection refused)"),
        ("451 4.7.1", "`rspamadm configtest` on mail1", "`systemctl restart rspamd.service`")),
    "clamd-silent": (
        lambda f: f.update(clamd="No such file or directory"),
        "clamd", ("ClamAV's clamd does not answer on /run/clamav/clamd.ctl (No such file or "
        "directory)"),
        ("CLAM_VIRUS_FAIL", "clamav__custom_signatures",
         "`systemctl restart clamav-daemon.service` on mail1")),
    "queue-too-long": (
        lambda f: f.update(queue={"total": 250, "deferred": 240}),
        "queue", "Postfix's mail queue holds 250 messages (240 deferred), more than 100",
        ("`postqueue -p` on mail1", "`postqueue -f` on mail1")),
    "queue-unreadable": (
        lambda f: f.update(queue={"error": "postqueue: fatal: Queue report unavailable"}),
        "queue", "Postfix's mail queue could not be read (postqueue: fatal:",
        ("`systemctl status postfix.service` on mail1",)),
    "certificate-expired": (
        lambda f: f.update(certificate={"pem": certificate_pem(-2)}),
        "certificate", "expired on 2026-01-10: clients and other servers refuse it",
        ("renew it now", "`hopthu deploy --engine ansible --inventory lab --limit mail1`")),
    "certificate-missing": (
        lambda f: f.update(certificate={"error": "missing"}),
        "certificate", "The host certificate /etc/hopthu/tls/host.fullchain.pem is missing",
        ("deploy the pki role",)),
    "disk-full": (
        lambda f: f["disks"].append({"mount": "/var", "path": "/var", "used_percent": 91.2,
                                     "free_bytes": 1_200_000_000, "size_bytes": 1}),
        "disk:/var", "The disk of /var is 91% full (1.2 GB free), over 85%",
        ("`du -xh -d 2 /var | sort -h | tail` on mail1", "give the filesystem more space")),
    "backup-failed": (
        lambda f: f.update(backup={"last": {
            "result": "failed", "finished_at": "2026-01-12T01:03:00+00:00",
            "message": "wrong passphrase for /srv/borg/mail1",
            "last_success_at": "2026-01-11T01:02:00+00:00"}, "enabled_since": None}),
        "backup", "The last backup failed at 2026-01-12T01:03:00+00:00 (wrong passphrase",
        ("fix what it says", "`systemctl start hopthu-backup.service` on mail1")),
    "backup-too-old": (
        lambda f: f.update(backup={"last": {
            "result": "ok", "last_success_at": "2026-01-10T08:00:00+00:00",
            "last_success_archive": "mail1-2026-01-10T080000Z"}, "enabled_since": None}),
        "backup", ("The last good backup (mail1-2026-01-10T080000Z) is 48.0 hours old, more "
        "than 26 hours"),
        ("`systemctl status hopthu-backup.timer hopthu-backup.service` on mail1",
         "`journalctl -u hopthu-backup.service -n 50` on mail1")),
    "backup-never": (
        lambda f: f.update(backup={"last": None, "enabled_since": "2026-01-10T06:00:00+00:00"}),
        "backup", "No backup has succeeded in the 50.0 hours since backups were enabled",
        ("`systemctl start hopthu-backup.service` on mail1",)),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failing_check_says_what_is_wrong_and_what_to_do(
    lab_plans: dict[str, Plan], case: str,
) -> None:
    breaks, check_id, message, todo = FAILURES[case]
    facts = healthy(lab_plans["mail1"])
    breaks(facts)
    host = judged(lab_plans["mail1"], facts)
    check = by_id(host)[check_id]
    assert check.state == FAIL, check
    assert message in check.message, check.message
    for part in todo:
        assert part in check.fix, f"{case}: the advice lacks {part!r}: {check.fix}"
    assert f"✗ {check.message} — what to do: {check.fix}" == check.line()
    assert not host.ok
    others = [c for c in host.checks if c.id != check_id and c.state == FAIL]
    assert not others, f"{case} also failed {others}"


def test_every_failing_line_of_the_command_says_what_to_do(
    lab_plans: dict[str, Plan], capsys: pytest.CaptureFixture[str],
) -> None:
    facts = healthy(lab_plans["mail1"])
    for breaks, *_ in FAILURES.values():
        breaks(facts)
    answers = {name: answer(healthy(plan)) for name, plan in lab_plans.items()}
    answers["mail1"] = answer(facts)
    code, out = command(capsys, runner_from(answers))
    failing = [line for line in out.splitlines() if line.lstrip().startswith("✗")]
    assert code == 1 and len(failing) >= 9
    assert all(" — what to do: " in line for line in failing), failing
    assert out.rstrip().endswith("4 hosts without failures; 1 with failures: mail1 "
                                 f"({len(failing)} failures)")


def test_a_certificate_within_21_days_is_a_warning_and_does_not_fail_the_run(
    lab_plans: dict[str, Plan],
) -> None:
    facts = healthy(lab_plans["mail1"])
    facts["certificate"] = {"pem": certificate_pem(12.5)}
    host = judged(lab_plans["mail1"], facts)
    check = by_id(host)["certificate"]
    assert check.state == WARN and "expires in 12 days (on 2026-01-24), within 21 days" in \
        check.message
    assert "internal CA issues a new one at the next deploy" in check.fix
    assert host.ok


def test_a_provided_certificate_is_renewed_by_the_operator(lab_plans: dict[str, Plan]) -> None:
    plan = dataclasses.replace(lab_plans["mail1"], pki_mode="provided")
    facts = healthy(plan)
    facts["certificate"] = {"pem": certificate_pem(3)}
    assert "put the renewed certificate at pki__cert_file" in by_id(judged(plan, facts))[
        "certificate"].fix


def test_a_unit_a_container_does_not_start_is_skipped_not_failed(
    lab_plans: dict[str, Plan],
) -> None:
    facts = healthy(lab_plans["mail1"])
    _unit(facts, "chrony.service", ActiveState="inactive", SubState="dead",
          ConditionResult="no")
    _unit(facts, "clamav-daemon.service", ActiveState="inactive", SubState="dead",
          ConditionResult="no")
    checks = by_id(judged(lab_plans["mail1"], facts))
    assert checks["service:chrony"].state == SKIP
    assert "a condition of chrony.service is not met" in checks["service:chrony"].message
    assert checks["service:clamd"].state == FAIL, "a mail daemon's condition is no excuse"


def test_backups_are_checked_where_the_backup_tool_keeps_its_state(
    lab_plans: dict[str, Plan],
) -> None:
    plan = lab_plans["mail1"]
    facts = healthy(plan)
    facts["backup"] = {"last": {"result": "ok", "last_success_at": "2026-01-12T01:00:00+00:00",
                                "last_success_archive": "mail1-2026-01-12T010000Z"},
                       "enabled_since": "2025-12-01T00:00:00+00:00"}
    check = by_id(judged(plan, facts))["backup"]
    assert (check.state, check.message) == (OK, ("The last good backup "
                                            "(mail1-2026-01-12T010000Z) is 7.0 hours old; the "
                                            "limit is 26 hours"))
    facts["backup"] = {"last": None, "enabled_since": "2026-01-12T02:00:00+00:00"}
    check = by_id(judged(plan, facts))["backup"]
    assert check.state == OK and check.message.startswith("No backup yet: backups were "
                                                          "enabled 6.0 hours ago")
    longer = dataclasses.replace(plan, backup_max_age_hours=72)
    facts["backup"] = {"last": {"result": "ok", "last_success_at": "2026-01-10T08:00:00+00:00"},
                       "enabled_since": None}
    assert by_id(judged(longer, facts))["backup"].state == OK, "backup__max_age_hours counts"


# --- hosts that cannot be checked -----------------------------------------------------


def test_an_unreachable_host_fails_with_a_hint_and_the_others_are_still_checked(
    lab_plans: dict[str, Plan], capsys: pytest.CaptureFixture[str],
) -> None:
    answers = {name: answer(healthy(plan)) for name, plan in lab_plans.items()}
    answers["mail2"] = hosts.RunResult(
        255, "", "ssh: connect to host 198.18.0.11 port 22: No route to host\n")
    code, out = command(capsys, runner_from(answers))
    assert code == 1
    block = out.split("\nmail2 (")[1].split("\n\n")[0]
    lines = [line.strip() for line in block.splitlines()[1:]]
    assert len(lines) == 1 and lines[0].startswith(
        "✗ mail2 cannot be reached over SSH (ssh: connect to host 198.18.0.11 port 22: "
        "No route to host) — what to do: is the lab up? `hopthu lab status`")
    assert "try it by hand: ssh -o BatchMode=yes" in lines[0] and lines[0].endswith(
        "198.18.0.11 true")
    for other in ("mail1", "backup1", "peer1", "client1"):
        assert f"\n{other} (" in out
    assert out.count("✓ SSH is running (ssh.service) and answers on port 22") == 4
    assert out.rstrip().endswith("4 hosts without failures; 1 with failures: mail2 "
                                 "(unreachable)")


def test_outside_the_lab_the_hint_names_the_inventorys_connection_settings(
    lab_plans: dict[str, Plan],
) -> None:
    plan = dataclasses.replace(lab_plans["mail1"], inventory="production")
    check = status_checks.judge(plan, hosts.RunResult(255, "", "Host key verification failed."))
    assert "ansible_host, ansible_user and ansible_ssh_private_key_file" in check.checks[0].fix
    assert "known_hosts" in check.checks[0].fix


def test_a_host_where_the_probe_cannot_run_says_what_it_needs(
    lab_plans: dict[str, Plan],
) -> None:
    host = status_checks.judge(lab_plans["mail1"],
                               hosts.RunResult(1, "", "sudo: a password is required\n"))
    assert host.reached and not host.ok
    assert host.checks[0].message == ("The status program did not run on mail1 (sudo: a "
                                      "password is required)")
    assert "python3" in host.checks[0].fix and "sudo that asks no password" in host.checks[0].fix


def test_a_host_whose_settings_do_not_load_is_reported_and_not_contacted(
    lab_plans: dict[str, Plan],
) -> None:
    broken = Plan(hosts.Target("mail1", "198.18.0.10", ("mail_mx",),
                               error="its settings did not load (bad key); run "
                               "`hopthu settings check --inventory lab`"), "lab")

    def never(target: hosts.Target, script: str) -> hosts.RunResult:
        raise AssertionError("a host without settings must not be contacted")

    (host,) = status.check_hosts([broken], never)
    assert not host.ok and "hopthu settings check --inventory lab" in host.checks[0].message


def test_one_hosts_surprise_does_not_stop_the_others(lab_plans: dict[str, Plan]) -> None:
    def run(target: hosts.Target, script: str) -> hosts.RunResult:
        if target.name == "mail1":
            raise RuntimeError("the runner broke")
        return answer(healthy(lab_plans[target.name]))

    statuses = status.check_hosts(list(lab_plans.values()), run)
    assert [s.ok for s in statuses] == [False, True, True, True, True]
    assert "RuntimeError: the runner broke" in statuses[0].checks[0].message


def test_hosts_are_checked_in_parallel_within_the_bound(lab_plans: dict[str, Plan]) -> None:
    lock, running, most = threading.Lock(), [0], [0]

    def run(target: hosts.Target, script: str) -> hosts.RunResult:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return answer(healthy(lab_plans[target.name]))

    statuses = status.check_hosts(list(lab_plans.values()), run, parallel=2)
    assert most[0] == 2, f"{most[0]} hosts were checked at once; the bound is 2"
    assert [s.name for s in statuses] == ["mail1", "mail2", "backup1", "peer1", "client1"]


def test_an_unknown_host_or_a_bad_bound_stops_before_any_host_is_contacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def never(target: hosts.Target, script: str) -> hosts.RunResult:
        raise AssertionError("no host may be contacted")

    for argv, said in ((["--host", "mail9"], "--host mail9: not in"),
                       (["--parallel", "0"], "--parallel must be 1 or more")):
        args = cli.build_parser().parse_args(["status", "--inventory", "lab", *argv])
        assert status.run(args, runner=never) == 2
        assert said in capsys.readouterr().err


# --- the probe itself, run here against fakes -----------------------------------------


def _proc_net_entry(address: str, port: int) -> str:
    raw = socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return f"{words.hex().upper()}:{port:04X}"


@pytest.fixture
def probe_world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Fake systemctl and postqueue, a /proc/net, Rspamd's /ping, clamd's socket, files."""
    listener = socket.create_server(("127.0.0.1", 0))
    open_port = listener.getsockname()[1]
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    class Ping(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"pong\r\n")

        def log_message(self, *args: Any) -> None:
            pass

    web = http.server.HTTPServer(("127.0.0.1", 0), Ping)
    clamd_path = tmp_path / "clamd.ctl"
    clamd = socket.socket(socket.AF_UNIX)
    clamd.bind(str(clamd_path))
    clamd.listen()

    def serve_clamd() -> None:
        while True:
            try:
                conn, _ = clamd.accept()
            except OSError:
                return
            with conn:
                if conn.recv(64) == b"zPING\0":
                    conn.sendall(b"PONG\0")

    threads = [threading.Thread(target=web.serve_forever, daemon=True),
               threading.Thread(target=serve_clamd, daemon=True)]
    for thread in threads:
        thread.start()

    proc_net = tmp_path / "net"
    proc_net.mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
    (proc_net / "tcp").write_text(header + "".join(
        f"   {i}: {_proc_net_entry(a, p)} 00000000:0000 {st} 00000000:00000000 00:00000000 "
        "00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n"
        for i, (a, p, st) in enumerate([("127.0.0.1", open_port, "0A"),
                                        ("127.0.0.1", closed_port, "0A"),
                                        ("127.0.0.1", 40000, "01")])))
    (proc_net / "tcp6").write_text(header + f"   0: {_proc_net_entry('::', 4190)} "
                                   "00000000000000000000000000000000:0000 0A 0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    blocks = {"ssh.service": "active\nSubState=running", "nsd.service": "inactive\n"
              "SubState=dead", "nothere.service": "inactive\nSubState=dead"}
    # Called as `systemctl show --property=... -- UNIT...`: one block per unit.
    systemctl = "#!/bin/sh\n[ \"$1\" = show ] || exit 1\nshift 3\nfirst=1\nfor u; do\n" \
        "  [ $first = 1 ] || echo\n  first=0\n  echo \"Id=$u\"\n  case $u in\n" \
        + "".join(f"    {u}) echo 'LoadState={'not-found' if u == 'nothere.service' else 'loaded'}'"
                  f"; echo 'ActiveState={state}' ;;\n" for u, state in blocks.items()) \
        + "  esac\ndone\n"
    postqueue = ("#!/bin/sh\necho '{\"queue_name\": \"deferred\", \"queue_id\": \"A1\"}'\n"
                 "echo '{\"queue_name\": \"active\", \"queue_id\": \"B2\"}'\n")
    for name, text in (("systemctl", systemctl), ("postqueue", postqueue)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    cert = tmp_path / "host.fullchain.pem"
    first = certificate_pem(300, dt.datetime.now(dt.UTC))
    cert.write_text(first + CERT_PEM)
    state = tmp_path / "last.json"
    an_hour_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    state.write_text(json.dumps({"result": "ok", "last_success_at": an_hour_ago,
                                 "last_success_archive": "mail1-x"}))
    spec = {"units": list(blocks), "ports": [open_port, closed_port, 40000, 4190],
            "queue": True, "certificate": str(cert), "disks": [str(tmp_path), "/nonexistent"],
            "backup": {"last": str(state), "enabled_since": str(tmp_path / "none")},
            "rspamd_url": f"http://127.0.0.1:{web.server_address[1]}/ping",
            "clamd_socket": str(clamd_path), "proc_net": str(proc_net)}
    yield {"spec": spec, "bin": bin_dir, "open": open_port, "closed": closed_port,
           "first": first}
    web.shutdown()
    web.server_close()
    clamd.close()
    listener.close()


def run_probe_here(spec: dict[str, Any], bin_dir: Path) -> hosts.RunResult:
    """The probe as a host runs it (sh -s reading the script), with the fakes first on PATH."""
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    script = status.probe_script(spec).replace("exec python3 ", f"exec {sys.executable} ", 1)
    done = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    return hosts.RunResult(done.returncode, done.stdout, done.stderr)


def test_the_probe_reads_units_ports_queue_certificate_disks_backup_and_filters(
    probe_world: dict[str, Any],
) -> None:
    result = run_probe_here(probe_world["spec"], probe_world["bin"])
    assert result.rc == 0, result.err
    facts = json.loads(result.out)
    assert facts["units"]["ssh.service"]["ActiveState"] == "active"
    assert facts["units"]["nothere.service"]["LoadState"] == "not-found"
    ports = facts["ports"]
    assert ports[str(probe_world["open"])] == {"listening": ["127.0.0.1"], "error": ""}
    assert ports[str(probe_world["closed"])]["listening"] == ["127.0.0.1"]
    assert "refused" in ports[str(probe_world["closed"])]["error"].lower()
    assert ports["40000"] == {"listening": [], "error": "nothing listens"}, "not LISTEN state"
    assert ports["4190"]["listening"] == ["::"], "IPv6 sockets count"
    assert facts["queue"] == {"total": 2, "deferred": 1}
    assert facts["certificate"]["pem"] == probe_world["first"], "the chain's first certificate"
    assert len(facts["disks"]) == 1 and 0 <= facts["disks"][0]["used_percent"] <= 100
    assert facts["backup"]["last"]["last_success_archive"] == "mail1-x"
    assert facts["backup"]["enabled_since"] is None
    assert facts["rspamd"] == "" and facts["clamd"] == ""


def test_the_probes_answer_is_judged_into_status_lines(
    probe_world: dict[str, Any], lab_plans: dict[str, Plan],
) -> None:
    spec = probe_world["spec"]
    ssh = status_checks.Service("ssh", "SSH", "common", {13: "ssh.service"},
                                (probe_world["open"],))
    nsd = status_checks.Service("nsd", "NSD", "lab_peer", {13: "nsd.service"},
                                (probe_world["closed"],))
    gone = status_checks.Service("gone", "Gone", "gone", {13: "nothere.service"})
    plan = dataclasses.replace(lab_plans["mail1"], services=(ssh, nsd, gone), spec=spec)
    host = status_checks.judge(plan, run_probe_here(spec, probe_world["bin"]))
    checks = by_id(host)
    assert checks["service:ssh"].state == OK
    assert checks["service:nsd"].state == FAIL and "nsd.service is inactive" in \
        checks["service:nsd"].message
    assert checks["service:gone"].state == FAIL and "not installed" in \
        checks["service:gone"].message
    assert checks["rspamd"].state == OK and checks["clamd"].state == OK
    assert checks["queue"].state == OK and checks["certificate"].state == OK
    assert checks["backup"].state == OK and "is 1.0 hours old" in checks["backup"].message


def test_the_probe_uses_nothing_but_pythons_standard_library() -> None:
    source = status.PROBE_SOURCE.read_text(encoding="utf-8")
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from "))}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
