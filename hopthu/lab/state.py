"""Where the lab keeps things, and the lock that serialises lab commands.

Layout on the machine that runs the lab::

    /var/lib/hopthu/lab/            the lab's state (removed by `down`, except ssh/)
        machines/<name>/            each host's root filesystem (a clone of an image)
        machines/<name>.json        what the clone was made from (suite, image, address)
        run/<name>.pid              the systemd-nspawn PID of a running host
        run/<name>.console.log      the host's console (boot and shutdown messages)
        run/apt-cacher-ng.pid       the apt proxy's PID
        apt-cacher-ng/              the proxy's own config and log directories
        ssh/id_ed25519              the lab key (made once, kept across `down`)
        ssh/known_hosts             each host's pinned ed25519 key, by name and address
        ssh/config                  `ssh -F` config for the hosts
    /var/cache/hopthu/images/<suite>/   cached base images (rootfs/ + image.json)
    /var/cache/hopthu/apt-cacher-ng/    the proxy's package cache (kept across `down`)

The key and known_hosts paths are fixed because inventories/lab/hosts.yml names
them. The address plan (198.18.0.0/24, RFC 2544 benchmark space) comes from
DESIGN.md §5: it never collides with an office network.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path

from hopthu.lab.errors import LabError

LAB_DIR = Path("/var/lib/hopthu/lab")
MACHINES_DIR = LAB_DIR / "machines"
RUN_DIR = LAB_DIR / "run"
SSH_DIR = LAB_DIR / "ssh"
PROXY_DIR = LAB_DIR / "apt-cacher-ng"
LOCK_FILE = LAB_DIR / ".lock"

IMAGE_CACHE = Path("/var/cache/hopthu/images")
APT_CACHE = Path("/var/cache/hopthu/apt-cacher-ng")

#: OpenSSH control sockets; ansible.cfg uses the same directory, so Ansible,
#: testinfra and `hopthu lab ssh` share one connection per host.
CONTROL_DIR = Path("/tmp/hopthu-ssh")

BRIDGE = "hopthu0"
NETWORK = ipaddress.ip_network("198.18.0.0/24")
BRIDGE_ADDRESS = "198.18.0.1"
PROXY_PORT = 3142

#: The inventory that describes the lab's hosts.
INVENTORY = "lab"

#: Debian suites the lab can boot, and their major release.
SUITES: dict[str, int] = {"trixie": 13, "bookworm": 12}
#: Debian 13 first (DESIGN.md §3); HOPTHU_LAB_SUITE lets CI run the whole
#: suite on Debian 12 without changing any command line.
DEFAULT_SUITE = os.environ.get("HOPTHU_LAB_SUITE", "trixie")

#: The Debian mirror images are built from. Only deb.debian.org is contacted;
#: the security archive is deb.debian.org/debian-security.
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"


def lab_dir() -> Path:
    """The lab's state directory."""
    return LAB_DIR


def ssh_config_path() -> Path:
    """The `ssh -F` config for the lab hosts (testinfra: ``ssh_config=``)."""
    return SSH_DIR / "config"


def known_hosts_path() -> Path:
    """The known_hosts file holding every lab host's pinned ed25519 key."""
    return SSH_DIR / "known_hosts"


def key_path() -> Path:
    """The lab's private SSH key (root on every host accepts it)."""
    return SSH_DIR / "id_ed25519"


def proxy_url() -> str:
    """The apt proxy as the hosts see it: the value for ``common__apt_proxy``."""
    return f"http://{BRIDGE_ADDRESS}:{PROXY_PORT}"


def bridge_cidr() -> str:
    return f"{BRIDGE_ADDRESS}/{NETWORK.prefixlen}"


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise LabError(
            f"unknown suite {suite!r}: the lab boots {', '.join(SUITES)} "
            f"(set --suite or HOPTHU_LAB_SUITE to one of them)",
            exit_code=2,
        )
    return suite


@contextlib.contextmanager
def lab_lock(timeout: float = 600.0) -> Iterator[None]:
    """Hold the lab lock: one `up`, `down` or `recreate` at a time.

    Two commands building the same clone or image at once would corrupt it,
    so they queue here. The wait is bounded: after `timeout` seconds the
    command gives up and names the holder.
    """
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise LabError(
                        f"another `hopthu lab` command (pid {holder}) has held {LOCK_FILE} "
                        f"for over {timeout:.0f} s; wait for it, or stop it if it is stuck"
                    ) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
