"""Lab hosts: clone an image, make the clone a host, boot it, stop it.

A clone is `cp -a` of the suite's cached image (LAB.md "Disk"), built as
``machines/.<name>.partial`` and renamed to ``machines/<name>`` once it is
complete, so a half-made clone is never booted. ``machines/<name>.json``
records what it was made from.

Booting follows LAB.md "Booting": ``systemd-nspawn --boot --register=no
--keep-unit`` (without the last two nspawn wants machined over D-Bus, which
this machine does not have), in its own session, PID kept. Also:

- ``--network-bridge`` gives the host a private network namespace with
  ``host0`` on the lab bridge; in its own namespace the host keeps
  CAP_NET_ADMIN, so nftables works inside (checked by the lab tests);
- ``--resolv-conf=off`` and ``--timezone=off``: nspawn would otherwise
  rewrite /etc/resolv.conf and /etc/localtime at each boot, files the common
  role manages, and a deploy after a reboot would no longer be a no-op;
- ``--link-journal=no``: the host's journal stays inside the host.

SIGTERM to nspawn powers the host off with the full shutdown sequence.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hopthu.lab import images, state
from hopthu.lab.errors import LabError
from hopthu.lab.fs import copy_tree, remove_tree
from hopthu.lab.processes import (
    container_inits,
    find,
    is_alive,
    rooted_in,
    run,
    spawn,
    tail,
    terminate,
    tracked_pid,
    wait_gone,
    write_pid,
)
from hopthu.lab.ssh import close_master

#: How long a host gets to power off after SIGTERM before SIGKILL.
STOP_GRACE = 30.0


@dataclass(frozen=True)
class Machine:
    name: str
    address: str


def root(name: str) -> Path:
    return state.MACHINES_DIR / name


def meta_path(name: str) -> Path:
    return state.MACHINES_DIR / f"{name}.json"


def pid_path(name: str) -> Path:
    return state.RUN_DIR / f"{name}.pid"


def console_log(name: str) -> Path:
    return state.RUN_DIR / f"{name}.console.log"


def _partial(name: str) -> Path:
    return state.MACHINES_DIR / f".{name}.partial"


# --- What exists -------------------------------------------------------------


def clone_names() -> list[str]:
    """Every complete clone on disk, in the inventory or not."""
    if not state.MACHINES_DIR.is_dir():
        return []
    return sorted(p.name for p in state.MACHINES_DIR.iterdir()
                  if p.is_dir() and not p.name.startswith("."))


def partial_clones() -> list[Path]:
    if not state.MACHINES_DIR.is_dir():
        return []
    return sorted(p for p in state.MACHINES_DIR.iterdir() if p.name.endswith(".partial"))


def clone_info(name: str) -> dict[str, Any] | None:
    """What the clone was made from, or None if there is no clone."""
    if not (root(name) / "etc/os-release").is_file():
        return None
    try:
        return json.loads(meta_path(name).read_text())
    except (OSError, ValueError):
        # The record is lost; the clone's own os-release still tells the suite.
        return {"suite": _codename(root(name)), "address": None, "image_built": None}


def _codename(rootfs: Path) -> str | None:
    for line in (rootfs / "etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def _is_nspawn_of(name: str) -> Callable[[list[str]], bool]:
    def match(argv: list[str]) -> bool:
        return (bool(argv) and os.path.basename(argv[0]) == "systemd-nspawn"
                and f"--machine={name}" in argv and str(root(name)) in argv)
    return match


def running_pid(name: str) -> int | None:
    """The host's nspawn PID if it runs (a stale PID file is cleaned up)."""
    return tracked_pid(pid_path(name), _is_nspawn_of(name))


def lab_nspawn_processes() -> list[int]:
    """Every nspawn process booting something under the lab's machines/."""
    prefix = str(state.MACHINES_DIR) + "/"
    return find(lambda argv: os.path.basename(argv[0]) == "systemd-nspawn"
                and any(arg.startswith(prefix) for arg in argv))


def host_key(name: str) -> str:
    """The clone's ed25519 host key, as "ssh-ed25519 AAAA..." (comment dropped)."""
    line = (root(name) / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return f"{line[0]} {line[1]}"


# --- Making a clone ----------------------------------------------------------


def make_clone(machine: Machine, suite: str, lab_public_key: str) -> None:
    """Clone the suite's image into machines/<name> and make it that host."""
    image = images.info(suite)
    if image is None:
        raise LabError(f"no complete {suite} image in {images.image_dir(suite)}; "
                       f"run `hopthu lab up --suite {suite}` to build it")
    partial = _partial(machine.name)
    remove_tree(partial)
    state.MACHINES_DIR.mkdir(parents=True, exist_ok=True)
    copy_tree(images.rootfs(suite), partial)
    _make_host(partial, machine, lab_public_key)
    record = {
        "name": machine.name,
        "suite": suite,
        "debian": state.SUITES[suite],
        "address": machine.address,
        "image_built": image["built"],
        "image_recipe": image["recipe"],
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    meta_path(machine.name).write_text(json.dumps(record, indent=2) + "\n")
    partial.rename(root(machine.name))


def _make_host(rootfs: Path, machine: Machine, lab_public_key: str) -> None:
    etc = rootfs / "etc"
    (etc / "hostname").write_text(f"{machine.name}\n")
    (etc / "hosts").write_text(
        "127.0.0.1\tlocalhost\n"
        f"127.0.1.1\t{machine.name}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\t\tip6-allnodes\n"
        "ff02::2\t\tip6-allrouters\n"
    )
    # A stable ID per host: journald keeps its files under /var/log/journal/<machine-id>,
    # so a changing ID would scatter a host's persistent journal (Art. 11.5 logs).
    (etc / "machine-id").write_text(f"{uuid.uuid4().hex}\n")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")

    # 10-: Debian's 80-container-host0.network (DHCP) must not match first (LAB.md).
    (etc / "systemd/network").mkdir(parents=True, exist_ok=True)
    (etc / "systemd/network/10-host0.network").write_text(
        "# Written by `hopthu lab` (hopthu/lab/machines.py).\n"
        "# A static address and nothing else: no gateway and no DNS, because lab\n"
        "# hosts have no route out (DESIGN.md §5). Packages come from the apt\n"
        "# proxy on the bridge.\n"
        "[Match]\n"
        "Name=host0\n"
        "\n"
        "[Network]\n"
        f"Address={machine.address}/{state.NETWORK.prefixlen}\n"
        "IPv6AcceptRA=no\n"
    )

    # The common role renders this same file from common__apt_proxy; until its
    # first run, this copy lets apt reach packages at all.
    (etc / "apt/apt.conf.d/01hopthu-proxy").write_text(
        "// Written by `hopthu lab` so the first deploy can install packages; the\n"
        "// common role manages this file (common__apt_proxy) from its first run.\n"
        f'Acquire::http::Proxy "{state.proxy_url()}";\n'
    )

    # Fresh host keys per clone (LAB.md), made here rather than at boot so
    # they can be pinned before the host ever answers.
    for old in (etc / "ssh").glob("ssh_host_*"):
        old.unlink()
    run(["ssh-keygen", "-A", "-f", str(rootfs)], timeout=60,
        what=f"make SSH host keys for {machine.name}")

    ssh_dir = rootfs / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(f"{lab_public_key}\n")
    authorized.chmod(0o600)


# --- Running -------------------------------------------------------------------


def boot(name: str) -> int:
    """Boot the clone in the background; return nspawn's PID."""
    argv = [
        "systemd-nspawn", "-D", str(root(name)), "--boot",
        "--register=no", "--keep-unit", f"--machine={name}",
        f"--network-bridge={state.BRIDGE}",
        "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        "--console=read-only",
    ]
    pid = spawn(argv, log=console_log(name))
    write_pid(pid_path(name), pid)
    # nspawn's own failures (a missing bridge, a bad machine-id) come at once;
    # report them here rather than as an SSH timeout later.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if not is_alive(pid):
            pid_path(name).unlink(missing_ok=True)
            raise LabError(f"systemd-nspawn for {name} exited at once; its console "
                           f"({console_log(name)}):\n{tail(console_log(name))}")
        time.sleep(0.1)
    return pid


def stop(name: str, *, grace: float = STOP_GRACE) -> str:
    """Power the host off (SIGTERM, then SIGKILL after `grace` s); return how."""
    close_master(name)
    pid = running_pid(name)
    text = "not running" if pid is None else terminate(pid, grace=grace)
    pid_path(name).unlink(missing_ok=True)
    cleaned = clear_leftovers(name, grace=grace)
    return f"{text}; {cleaned}" if cleaned else text


def orphans(name: str) -> list[int]:
    """Processes still running in the clone although its nspawn is gone."""
    if not root(name).is_dir():
        return []
    return rooted_in(root(name))


def clear_leftovers(name: str, *, grace: float = STOP_GRACE) -> str:
    """Stop an orphaned host and remove its stale veth; "" if there was nothing.

    A SIGKILLed nspawn does not take the host with it: the host's systemd
    runs on, orphaned, and keeps its veth `vb-<name>`, so the next boot fails
    with "Failed to add new veth interfaces: File exists". Power it off the
    way nspawn would (SIGRTMIN+3 to its init), then SIGKILL what remains.
    """
    done = []
    stray = orphans(name)
    if stray:
        inits = [pid for pid in container_inits() if pid in stray]
        for init in inits:
            _signal(init, signal.SIGRTMIN + 3)
        deadline = time.monotonic() + (grace if inits else 0)
        while time.monotonic() < deadline and orphans(name):
            time.sleep(0.2)
        left = orphans(name)
        for pid in left:
            _signal(pid, signal.SIGKILL)
        if left and not all(wait_gone(pid, 10.0) for pid in left):
            raise LabError(
                f"processes {left} of {name} survived SIGKILL; check them with "
                f"`ps -o pid,stat,cmd -p {','.join(map(str, left))}`"
            )
        done.append(f"orphaned host stopped ({len(stray)} processes"
                    f"{', ' + str(len(left)) + ' killed' if left else ''})")
    veth = f"vb-{name}"
    if _link_exists(veth):
        # The veth goes with the host's network namespace, a moment after
        # its last process.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _link_exists(veth):
            time.sleep(0.2)
        if _link_exists(veth):
            run(["ip", "link", "del", veth], timeout=15, what=f"remove stale veth {veth}")
            done.append(f"stale veth {veth} removed")
    return ", ".join(done)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _link_exists(device: str) -> bool:
    return Path(f"/sys/class/net/{device}").exists()


def remove(name: str) -> None:
    """Delete the clone and its record (stop it first)."""
    remove_tree(_partial(name))
    remove_tree(root(name))
    meta_path(name).unlink(missing_ok=True)
