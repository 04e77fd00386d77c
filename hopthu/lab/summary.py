"""`hopthu lab summary`: what `make lab` prints at the end.

The hosts and their groups, which of hopthu's services run on each, the last
infra-suite result, and how to send a first message. It only reads: the lab
status, `systemctl is-active` on each host, and the JUnit file that
`hopthu verify` wrote.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from hopthu import ROOT

#: The units hopthu may run, in mail-flow order. Only those present are shown.
SERVICES = (
    "ssh", "nftables", "unbound", "chrony", "postfix", "dovecot", "rspamd", "redis-server",
    "clamav-daemon", "nginx", "nsd", "fail2ban",
    # Monitoring (roles/node_exporter, postfix_exporter, prometheus).
    "prometheus-node-exporter", "prometheus-postfix-exporter", "prometheus",
    "prometheus-blackbox-exporter",
)


def junit_totals(path: Path) -> dict[str, int] | None:
    if not path.is_file():
        return None
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in totals:
            totals[key] += int(suite.get(key, 0))
    totals["passed"] = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    return totals


def host_services(host: str) -> dict[str, str]:
    from hopthu.lab import ssh_run

    units = " ".join(f"{unit}.service" for unit in SERVICES)
    script = (
        f"for u in {units}; do "
        'if systemctl cat "$u" >/dev/null 2>&1; then echo "$u $(systemctl is-active "$u")"; fi; '
        "done"
    )
    result = ssh_run(host, script, timeout=30)
    states: dict[str, str] = {}
    for line in result.out.splitlines():
        unit, _, state = line.partition(" ")
        states[unit.removesuffix(".service")] = state
    return states


def render(junit: Path | None = None) -> tuple[str, bool]:
    """The summary text, and whether everything is fine."""
    from hopthu import inventory
    from hopthu.lab import status

    inv = inventory.load("lab")
    lab_status = status()
    junit = junit or ROOT / "reports" / "lab" / "infra-junit.xml"
    ok = lab_status["state"] == "up"
    lines = [f"hopthu lab: {lab_status['state']}", ""]
    for name, host in lab_status["hosts"].items():
        groups = ", ".join(inv.host_groups(name)) if name in inv.hosts else "-"
        if not (host["running"] and host["ssh"]):
            lines.append(f"  {name:<8} {host['address']:<13} DOWN   ({groups})")
            ok = False
            continue
        services = host_services(name)
        failed = [u for u, s in services.items() if s not in ("active", "inactive")]
        shown = " ".join(f"{u}{'' if s == 'active' else '(' + s + ')'}"
                         for u, s in services.items() if s != "inactive")
        lines.append(f"  {name:<8} {host['address']:<13} up     ({groups})")
        lines.append(f"           services: {shown or 'none'}")
        if failed:
            ok = False
            lines.append(f"           FAILED: {', '.join(failed)}: "
                         f"see `hopthu lab ssh {name} journalctl -u {failed[0]}`")
    lines.append("")
    totals = junit_totals(junit)
    if totals is None:
        lines.append(f"infra suite: no result yet ({junit.relative_to(ROOT)} is missing): "
                     "run `hopthu verify --inventory lab`")
        ok = False
    else:
        verdict = "PASSED" if not (totals["failures"] or totals["errors"]) else "FAILED"
        ok = ok and verdict == "PASSED"
        lines.append(
            f"infra suite: {verdict}: {totals['passed']} passed, {totals['failures']} failed, "
            f"{totals['errors']} errors, {totals['skipped']} skipped "
            f"({junit.relative_to(ROOT)})")
    lines += [
        "",
        "next steps:",
        "  hopthu lab ssh mail1                      a shell on the mail host",
        "  hopthu verify --inventory lab             run the infra suite again",
        "  hopthu deploy --engine pyinfra --inventory lab --check   the other engine, dry",
    ]
    monitor = [h for h in inv.hosts_in("mail_monitor") if h in lab_status["hosts"]]
    if monitor and "prometheus" in host_services(monitor[0]):
        from hopthu.settings import load_host

        port = load_host("lab", monitor[0]).values["prometheus__port"]
        url = f"http://{inv.hosts[monitor[0]].address}:{port}/alerts"
        lines.append(f"  {url:<41} the monitor's alerts (internal zone)")
    mx = [h for h in inv.hosts_in("mail_mx") if h in lab_status["hosts"]]
    if mx and "postfix" in host_services(mx[0]):
        address = inv.hosts[mx[0]].address
        lines.append(
            f"  swaks --server {address} --port 587 --tls --auth-user USER --to USER "
            "   send a first message (users: inventories/lab/group_vars)")
    return "\n".join(lines), ok
