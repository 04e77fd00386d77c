"""Bad settings stop every way of deploying before any host is contacted.

Each host of a copy of the lab inventory is pointed at a TCP listener on
loopback, and one setting is made invalid. Whichever way the deploy is started
(the wrapper or the raw engine command, with either engine), it must fail with
a message naming the file and the key, and the listener must see no
connection at all: not even an SSH handshake was attempted.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from hopthu import ROOT

BIN = Path(sys.executable).parent


class ConnectionCounter:
    """A loopback TCP listener that counts the connections it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener():
    counter = ConnectionCounter()
    yield counter
    counter.close()


@pytest.fixture
def bad_inventory(tmp_path: Path, listener: ConnectionCounter) -> Path:
    inv = tmp_path / "badlab"
    shutil.copytree(ROOT / "inventories" / "lab", inv)
    hosts_file = inv / "hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    for host_vars in hosts["all"]["hosts"].values():
        host_vars["ansible_host"] = "127.0.0.1"
    hosts["all"]["vars"]["ansible_port"] = listener.port
    hosts_file.write_text(yaml.safe_dump(hosts))
    group_vars = inv / "group_vars" / "all.yml"
    data = yaml.safe_load(group_vars.read_text())
    # A prefix length no IPv4 network can have.
    data["common__firewall_internal_networks"] = ["198.18.0.0/33"]
    group_vars.write_text(yaml.safe_dump(data, allow_unicode=True))
    return inv


def _commands(inv: Path) -> dict[str, list[str]]:
    return {
        "hopthu deploy --engine ansible": [
            str(BIN / "hopthu"), "deploy", "--engine", "ansible", "--inventory", str(inv)],
        "hopthu deploy --engine pyinfra": [
            str(BIN / "hopthu"), "deploy", "--engine", "pyinfra", "--inventory", str(inv)],
        "ansible-playbook": [
            str(BIN / "ansible-playbook"), "-i", str(inv / "hosts.yml"), str(ROOT / "site.yml")],
        "pyinfra": [str(BIN / "pyinfra"), "--yes", str(inv / "inventory.py"), str(ROOT / "deploy.py")],
    }


@pytest.mark.parametrize(
    "way", ["hopthu deploy --engine ansible", "hopthu deploy --engine pyinfra",
            "ansible-playbook", "pyinfra"],
)
def test_bad_setting_stops_deploy_before_any_host_is_contacted(
    way: str, bad_inventory: Path, listener: ConnectionCounter
) -> None:
    cmd = _commands(bad_inventory)[way]
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "HOME": str(bad_inventory), "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"{way} accepted a bad setting:\n{output[-3000:]}"
    assert "common__firewall_internal_networks" in output, (
        f"{way}: the error does not name the key:\n{output[-3000:]}")
    assert "group_vars/all.yml" in output, (
        f"{way}: the error does not name the file:\n{output[-3000:]}")
    assert listener.count == 0, (
        f"{way} opened {listener.count} connection(s) to a host despite the bad setting")
