"""The lab itself: `hopthu lab up | status | ssh | recreate | down`, on the real lab.

Run as root:  pytest -m lab tests/lab/test_lab_lifecycle.py
and, to include the tests that replace hosts and tear the lab down:
              HOPTHU_LAB_TEARDOWN=1 pytest -m lab tests/lab/test_lab_lifecycle.py

The `lab_hosts` fixture brings the lab up if it is not (idempotent, about a
second on a running lab). The first tests only look: every host answers SSH
with its pinned key, runs systemd, reaches the others over the bridge, has no
route out, and fetches packages through the proxy; a second `up` changes
nothing; `up` refuses to mix Debian releases.

The destructive tests (recreate a host, boot one on Debian 12, `down`) wipe
whatever was deployed to the hosts they touch. Other lab test modules deploy
to the hosts and test on what they deployed, so these run only when
HOPTHU_LAB_TEARDOWN=1 is set (CI sets it in a run of its own), they come
last in this module, and each restores what it took: `down` is followed by
`up`, a bookworm host goes back to its suite. The module always leaves the
lab up, with every host on the suite it found.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hopthu import lab
from hopthu.lab import machines, proxy, state
from hopthu.lab.processes import container_inits

pytestmark = pytest.mark.lab

destructive = pytest.mark.skipif(
    not os.environ.get("HOPTHU_LAB_TEARDOWN"),
    reason="replaces lab hosts (wipes what was deployed): set HOPTHU_LAB_TEARDOWN=1",
)

HOSTS = ["mail1", "mail2", "backup1", "peer1", "client1"]

#: The lab's CLI module on its own (`hopthu lab ...`), without loading the
#: other subcommands' modules.
LAB_CLI = (
    "import argparse, sys; from hopthu.lab import command; "
    "p = argparse.ArgumentParser(prog='hopthu lab'); command.add_arguments(p); "
    "sys.exit(command.run(p.parse_args()))"
)


def hopthu_lab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LAB_CLI, *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def on(host: str, command: str, timeout: float = 60) -> str:
    """Run a command on a lab host; fail the test with its output if it fails."""
    rc, out, err = lab.ssh_run(host, command, timeout=timeout)
    assert rc == 0, f"{host}: `{command}` exited {rc}:\n{out}{err}"
    return out


def pinned_key(host: str, address: str) -> str:
    for line in state.known_hosts_path().read_text().splitlines():
        names, key = line.split(" ", 1)
        if names == f"{host},{address}":
            return key.strip()
    raise AssertionError(f"{host} ({address}) has no pinned key in {state.known_hosts_path()}")


# --- The running lab: read-only checks ---------------------------------------------


def test_the_lab_inventory_names_the_expected_hosts(lab_hosts: dict[str, str]) -> None:
    assert list(lab_hosts) == HOSTS


@pytest.mark.parametrize("host", HOSTS)
def test_host_answers_ssh_with_its_pinned_key(lab_hosts: dict[str, str], host: str) -> None:
    served = on(host, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    assert f"{served[0]} {served[1]}" == pinned_key(host, lab_hosts[host]), (
        f"{host} serves another ed25519 key than the one pinned: run `hopthu lab recreate {host}`"
    )


def test_ssh_config_checks_host_keys() -> None:
    config = state.ssh_config_path().read_text()
    assert "StrictHostKeyChecking yes" in config
    assert "StrictHostKeyChecking no" not in config
    assert f"UserKnownHostsFile {state.known_hosts_path()}" in config


@pytest.mark.parametrize("host", HOSTS)
def test_host_boots_systemd_to_running(lab_hosts: dict[str, str], host: str) -> None:
    # "degraded" is accepted: a deployed service that fails is the concern of
    # that service's tests, not of the lab's.
    _, out, _ = lab.ssh_run(host, "systemctl is-system-running --wait", timeout=90)
    failed = on(host, "systemctl --failed --plain --no-legend")
    assert out.strip() in ("running", "degraded"), (
        f"{host}: systemd is {out.strip()!r}; failed units:\n{failed}"
    )


def test_hosts_have_their_own_identity(lab_hosts: dict[str, str]) -> None:
    identities = {host: on(host, "hostname; cat /etc/machine-id").split() for host in HOSTS}
    assert all(identities[h][0] == h for h in HOSTS), identities
    machine_ids = [identity[1] for identity in identities.values()]
    assert len(set(machine_ids)) == len(HOSTS), f"machine IDs are shared: {identities}"


@pytest.mark.parametrize("host", HOSTS)
def test_host_reaches_the_next_host_over_the_bridge(lab_hosts: dict[str, str], host: str) -> None:
    # At the link layer: once deployed, the hosts' firewalls drop what their
    # zone may not reach (peer1 is "the Internet"), which is the firewall
    # tests' business. A SYN makes the host resolve its peer over the bridge;
    # the answered ARP request shows the frames get through.
    peer = HOSTS[(HOSTS.index(host) + 1) % len(HOSTS)]
    address = lab_hosts[peer]
    neighbour = on(host, f"ip neigh flush to {address}; "
                         f"timeout 3 bash -c '</dev/tcp/{address}/22' 2>/dev/null; "
                         f"ip neigh show to {address}")
    assert "lladdr" in neighbour, f"{host} cannot resolve {peer} ({address}): {neighbour!r}"


@pytest.mark.parametrize("host", HOSTS)
def test_host_has_no_route_out(lab_hosts: dict[str, str], host: str) -> None:
    assert on(host, "ip -4 route show default; ip -6 route show default").strip() == ""
    # A route lookup only: no packet leaves. 203.0.113.1 is TEST-NET-3.
    rc, _, err = lab.ssh_run(host, "ip route get 203.0.113.1")
    assert rc != 0 and "unreachable" in err, f"{host} has a route to 203.0.113.1: {err}"


def test_host_runs_nftables_in_its_own_network_namespace(lab_hosts: dict[str, str]) -> None:
    # nspawn keeps CAP_NET_ADMIN for a host with a private network namespace,
    # which --network-bridge gives: the firewall role can load its rules.
    on("mail1", "nft list ruleset")


def test_host_fetches_package_indexes_through_the_proxy(lab_hosts: dict[str, str]) -> None:
    host = "peer1"
    configured = on(host, "apt-config dump Acquire::http::Proxy")
    assert state.proxy_url() in configured
    # The host has no route out, so a successful update came through the proxy.
    out = on(host, "apt-get update", timeout=300)
    assert "-security" in out, f"no security archive in the host's sources:\n{out}"
    log = (proxy.LOG_DIR / "apt-cacher.log").read_text()
    assert f"|{lab_hosts[host]}|" in log, "the proxy's log shows no request from the host"


def test_lab_status_reports_every_host_up(lab_hosts: dict[str, str]) -> None:
    result = hopthu_lab("status", "--json", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "up"
    assert status["bridge"]["has_lab_address"] and status["proxy"]["answers"]
    assert all(h["running"] and h["ssh"] for h in status["hosts"].values()), status["hosts"]


def test_second_up_leaves_running_hosts_alone(lab_hosts: dict[str, str]) -> None:
    before = {name: h["pid"] for name, h in lab.status(check_ssh=False)["hosts"].items()}
    began = time.monotonic()
    result = hopthu_lab("up", timeout=300)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stdout + result.stderr
    after = {name: h["pid"] for name, h in lab.status(check_ssh=False)["hosts"].items()}
    assert after == before, "a second `up` restarted hosts"
    for host in HOSTS:
        assert f"{host:<8} running, pid {before[host]}: left alone" in result.stdout
    assert took < 30, f"a second `up` took {took:.0f} s:\n{result.stdout}"


def test_up_refuses_to_mix_debian_releases(lab_hosts: dict[str, str]) -> None:
    current = machines.clone_info("mail1")["suite"]
    other = next(s for s in state.SUITES if s != current)
    pid = machines.running_pid("mail1")
    result = hopthu_lab("up", "--suite", other, "mail1", timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"hopthu lab recreate --suite {other} mail1" in result.stderr
    assert machines.running_pid("mail1") == pid


def test_status_adopts_a_host_whose_pid_file_was_lost(lab_hosts: dict[str, str]) -> None:
    pid = machines.running_pid("mail2")
    machines.pid_path("mail2").unlink()
    assert lab.status(check_ssh=False)["hosts"]["mail2"]["pid"] == pid
    assert machines.pid_path("mail2").read_text().strip() == str(pid)


def test_lab_ssh_runs_a_command_on_a_host(lab_hosts: dict[str, str]) -> None:
    result = hopthu_lab("ssh", "backup1", "hostname", timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "backup1"), result.stderr


def test_lab_ssh_refuses_an_unknown_host(lab_hosts: dict[str, str]) -> None:
    result = hopthu_lab("ssh", "nosuchhost", "true", timeout=60)
    assert result.returncode == 2 and "not a lab host" in result.stderr


# --- Destructive: replace hosts, tear down (HOPTHU_LAB_TEARDOWN=1) -------------------


@destructive
def test_up_recovers_a_host_whose_nspawn_was_killed(lab_hosts: dict[str, str]) -> None:
    # SIGKILL to nspawn leaves the host's systemd running, orphaned, holding
    # its veth; `up` must power it off and boot the host again.
    host = "backup1"
    os.kill(machines.running_pid(host), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while machines.running_pid(host) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    status = lab.status(check_ssh=False)
    assert status["state"] == "partial" and not status["hosts"][host]["running"]
    assert status["leftovers"]["orphaned_hosts"], "the orphaned host was not noticed"
    result = hopthu_lab("up", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{host:<8} leftovers of a crashed run: orphaned host stopped" in result.stdout
    assert lab.status()["state"] == "up"


@destructive
def test_recreate_gives_a_host_a_fresh_clone(lab_hosts: dict[str, str]) -> None:
    host = "peer1"
    on(host, "touch /root/left-by-the-old-clone")
    old_id = on(host, "cat /etc/machine-id").strip()
    old_key = pinned_key(host, lab_hosts[host])
    lab.recreate(host)
    assert on(host, "cat /etc/machine-id").strip() != old_id
    assert pinned_key(host, lab_hosts[host]) != old_key, "the new clone kept the old host key"
    assert on(host, "ls /root/left-by-the-old-clone 2>/dev/null || true").strip() == ""


@destructive
def test_recreate_boots_a_debian_12_host_and_back(lab_hosts: dict[str, str]) -> None:
    host = "peer1"
    original = machines.clone_info(host)["suite"]
    try:
        lab.recreate(host, suite="bookworm")
        assert "VERSION_CODENAME=bookworm" in on(host, "cat /etc/os-release")
        assert on(host, "systemctl is-system-running --wait", timeout=90).strip() == "running"
        on(host, "nft list ruleset")
        assert lab.status()["hosts"][host]["suite"] == "bookworm"
    finally:
        lab.recreate(host, suite=original)
    assert machines.clone_info(host)["suite"] == original


@destructive
def test_down_leaves_nothing_behind_and_up_restores_the_lab(lab_hosts: dict[str, str]) -> None:
    try:
        result = hopthu_lab("down", timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr

        assert hopthu_lab("status", timeout=60).returncode == 3
        assert machines.lab_nspawn_processes() == [], "a systemd-nspawn process survived"
        assert container_inits() == [], "a host's systemd survived its nspawn"
        assert proxy.running_pid() is None, "apt-cacher-ng survived"
        bridge = subprocess.run(["ip", "link", "show", state.BRIDGE], capture_output=True,
                                check=False)
        assert bridge.returncode != 0, f"the bridge {state.BRIDGE} survived"
        assert not state.MACHINES_DIR.exists() or not any(state.MACHINES_DIR.iterdir())
        assert not state.RUN_DIR.exists()
        # What `down` keeps, so the next `up` is fast: images, apt cache, lab key.
        assert state.key_path().exists()
        assert any((state.IMAGE_CACHE / suite / "image.json").exists() for suite in state.SUITES)
    finally:
        result = hopthu_lab("up", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert hopthu_lab("status", timeout=60).returncode == 0
