"""SSH to the lab hosts: the lab key, pinned host keys, `ssh -F` config.

The hosts are reached over real SSH (DESIGN.md §5), with host key checking
on: each clone gets fresh host keys (LAB.md: `ssh-keygen -A` per clone), and
its ed25519 key is pinned in known_hosts under the host's name and its
address, so `ssh mail1` and Ansible's `ssh 198.18.0.10` both check it.
Nothing here turns StrictHostKeyChecking off.

The config shares /tmp/hopthu-ssh/%C with ansible.cfg's control_path, so one
master connection per host serves Ansible, testinfra and this module
(LAB.md "testinfra": about 2x faster).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from hopthu.lab import state
from hopthu.lab.errors import LabError
from hopthu.lab.processes import run


class SshResult(NamedTuple):
    """What a command run on a host gave: unpack as ``rc, out, err``."""

    rc: int
    out: str
    err: str


def ensure_key() -> str:
    """Make the lab key once; return its public half."""
    key = state.key_path()
    state.SSH_DIR.mkdir(parents=True, exist_ok=True)
    state.SSH_DIR.chmod(0o700)
    if not key.exists():
        key.with_suffix(".pub").unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hopthu-lab", "-f", str(key)],
            timeout=30, what="make the lab SSH key")
    if not key.with_suffix(".pub").exists():
        result = run(["ssh-keygen", "-y", "-f", str(key)], timeout=30,
                     what="derive the lab key's public half")
        key.with_suffix(".pub").write_text(result.stdout)
    return key.with_suffix(".pub").read_text().strip()


def write_known_hosts(entries: Mapping[str, tuple[str, str]]) -> None:
    """Pin each host's key: ``{name: (address, "ssh-ed25519 AAAA...")}``."""
    lines = [f"{name},{address} {key}\n" for name, (address, key) in sorted(entries.items())]
    _write_atomically(state.known_hosts_path(), "".join(lines))


def write_config(hosts: Mapping[str, str]) -> None:
    """The `ssh -F` config: one Host block per lab host, then shared settings."""
    header = (
        "# Written by `hopthu lab up` (hopthu/lab/ssh.py); rewritten on every up.\n"
        f"# Use: ssh -F {state.ssh_config_path()} HOST\n\n"
    )
    blocks = [f"Host {name}\n    HostName {address}\n\n" for name, address in hosts.items()]
    patterns = " ".join([*hosts, f"{str(state.NETWORK.network_address).rsplit('.', 1)[0]}.*"])
    shared = f"""\
Host {patterns}
    User root
    IdentityFile {state.key_path()}
    IdentitiesOnly yes
    UserKnownHostsFile {state.known_hosts_path()}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    HostKeyAlgorithms ssh-ed25519
    BatchMode yes
    ConnectTimeout 5
    ServerAliveInterval 15
    ServerAliveCountMax 4
    ControlMaster auto
    ControlPath {state.CONTROL_DIR}/%C
    ControlPersist 120s
"""
    _write_atomically(state.ssh_config_path(), header + "".join(blocks) + shared)


def remove_files() -> None:
    state.known_hosts_path().unlink(missing_ok=True)
    state.ssh_config_path().unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)


def _argv(host: str, *options: str) -> list[str]:
    state.CONTROL_DIR.mkdir(mode=0o700, exist_ok=True)
    return ["ssh", "-F", str(state.ssh_config_path()), *options, host]


def ssh_run(
    host: str,
    command: str | Sequence[str],
    *,
    timeout: float = 120.0,
    input: str | None = None,
) -> SshResult:
    """Run `command` on a lab host as root; return (rc, out, err).

    A list is quoted for the remote shell; a string is passed as a shell
    command line. rc 255 is SSH's own failure (host down, key mismatch).
    A command that outlives `timeout` gives rc 124, as timeout(1) does.
    """
    if not state.ssh_config_path().exists():
        raise LabError(f"no SSH config at {state.ssh_config_path()}: the lab is not up; "
                       f"run `hopthu lab up`")
    remote = command if isinstance(command, str) else shlex.join(command)
    try:
        result = subprocess.run(
            [*_argv(host), "--", remote], input=input, capture_output=True, text=True,
            timeout=timeout, check=False, stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        def text(data: str | bytes | None) -> str:
            return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")

        return SshResult(124, text(exc.stdout),
                         text(exc.stderr) + f"\n(timed out after {timeout:.0f} s)")
    return SshResult(result.returncode, result.stdout, result.stderr)


def probe(host: str, *, timeout: float = 8.0) -> tuple[bool, str]:
    """One quick login attempt without the shared master: (ok, ssh's complaint)."""
    try:
        result = subprocess.run(
            [*_argv(host, "-o", "ControlMaster=no", "-o", "ControlPath=none",
                    "-o", "ConnectTimeout=3"), "--", "true"],
            capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s"
    return result.returncode == 0, result.stderr.strip()


def wait_for(host: str, *, timeout: float) -> tuple[bool, str]:
    """Poll until `host` accepts the lab key with its pinned host key."""
    deadline = time.monotonic() + timeout
    complaint = ""
    while time.monotonic() < deadline:
        ok, complaint = probe(host)
        if ok:
            return True, ""
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in complaint or \
                "Host key verification failed" in complaint:
            # A key mismatch does not fix itself by waiting.
            return False, complaint
        time.sleep(0.5)
    return False, complaint or "no answer"


def close_master(host: str) -> None:
    """End the shared connection to `host`, so the next one checks the new key."""
    if not state.ssh_config_path().exists():
        return
    subprocess.run([*_argv(host, "-O", "exit")], capture_output=True, timeout=10, check=False,
                   stdin=subprocess.DEVNULL)
