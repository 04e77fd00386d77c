"""Base images: one cached Debian root filesystem per suite.

An image is a debootstrap `minbase` (LAB.md "Building a root filesystem":
about 50 s and 310 MB) plus what every lab host needs: systemd as init, sshd
for the engines, python3 and python3-apt for Ansible's apt module, iproute2
and nftables for the network and the firewall role. It lives in
/var/cache/hopthu/images/<suite>/ as ``rootfs/`` and ``image.json``.

The cache is only trusted when complete: an image is built in a
``.<suite>.partial`` directory and renamed into place at the very end, so an
interrupted build is never cloned; the next `up` throws the leftover away.
``image.json`` records the recipe version; a change to the recipe below bumps
it, and images of an older recipe are rebuilt.

The image is host-neutral: an empty /etc/machine-id (LAB.md: empty or valid,
a lone newline aborts nspawn), no SSH host keys, no hostname. Each clone gets
its own (machines.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hopthu.lab import state
from hopthu.lab.fs import remove_tree
from hopthu.lab.processes import run

#: Bump when the recipe changes: cached images of an older recipe are rebuilt.
IMAGE_RECIPE = 3

#: debootstrap --include: what a minbase lacks for a lab host.
PACKAGES = (
    "systemd",
    "systemd-sysv",  # /sbin/init, so `nspawn --boot` boots systemd
    "dbus",  # systemctl, hostnamectl and logind need the system bus
    "openssh-server",  # both engines reach the hosts over SSH
    "python3",
    "python3-apt",  # Ansible's apt module needs it (LAB.md "Controller side")
    "iproute2",
    "netbase",  # /etc/services and /etc/protocols: nft and many daemons read them
    "procps",  # ps, pgrep: testinfra's process checks
    "nftables",  # the firewall (Art. 3); also lets the lab prove CAP_NET_ADMIN works
)

#: Units that make no sense in a lab host or get in the way.
MASKED_UNITS = (
    # (apt's daily timers stay as Debian ships them: the common role enables
    # them (Art. 11.2), and apt waits for the dpkg lock: DPkg::Lock::Timeout.)
    # With an empty machine-id the first boot would prompt on the console for
    # a locale and a root password; each clone gets a machine-id instead,
    # and this guard keeps a forgotten one from hanging a boot.
    "systemd-firstboot.service",
)

#: Build time limits: generous, but a dead mirror must not hang `up`.
DEBOOTSTRAP_TIMEOUT = 1200.0
CUSTOMISE_TIMEOUT = 900.0


def image_dir(suite: str) -> Path:
    return state.IMAGE_CACHE / suite


def rootfs(suite: str) -> Path:
    return image_dir(suite) / "rootfs"


def _partial_dir(suite: str) -> Path:
    return state.IMAGE_CACHE / f".{suite}.partial"


def info(suite: str) -> dict[str, Any] | None:
    """The image's record, or None when there is no complete image of this recipe."""
    try:
        record = json.loads((image_dir(suite) / "image.json").read_text())
    except (OSError, ValueError):
        return None
    if record.get("recipe") != IMAGE_RECIPE or not (rootfs(suite) / "etc/os-release").is_file():
        return None
    return record


def ensure_image(suite: str, proxy: str | None) -> str:
    """Build the suite's image unless a complete one is cached; return what was done."""
    record = info(suite)
    if record is not None:
        return f"cached, built {record['built']}"
    build(suite, proxy)
    record = info(suite) or {}
    return (f"built (debootstrap {record.get('debootstrap_seconds', 0):.0f}s, "
            f"customise {record.get('customise_seconds', 0):.0f}s)")


def build(suite: str, proxy: str | None) -> Path:
    """Build the suite's image from scratch, then swap it into the cache."""
    state.check_suite(suite)
    partial = _partial_dir(suite)
    remove_tree(partial)  # a build interrupted earlier
    partial.mkdir(parents=True)
    log = partial / "build.log"
    root = partial / "rootfs"
    env = {"http_proxy": proxy} if proxy else None

    began = time.monotonic()
    run(
        ["debootstrap", "--variant=minbase", "--components=main",
         f"--include={','.join(PACKAGES)}", suite, str(root), state.DEBIAN_MIRROR],
        timeout=DEBOOTSTRAP_TIMEOUT, what=f"debootstrap {suite}", env=env, log=log,
    )
    debootstrap_seconds = time.monotonic() - began

    began = time.monotonic()
    _write_sources(root, suite)
    # Empty before nspawn runs anything: debootstrap leaves a real ID here,
    # and every clone would share it.
    (root / "etc/machine-id").write_text("")
    _customise(root, suite, proxy, log)
    _make_host_neutral(root)
    customise_seconds = time.monotonic() - began

    record = {
        "suite": suite,
        "debian": state.SUITES[suite],
        "recipe": IMAGE_RECIPE,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "packages": list(PACKAGES),
        "masked": list(MASKED_UNITS),
        "debootstrap_seconds": round(debootstrap_seconds, 1),
        "customise_seconds": round(customise_seconds, 1),
        "via_proxy": bool(proxy),
    }
    (partial / "image.json").write_text(json.dumps(record, indent=2) + "\n")

    # The swap: a rename is atomic, so readers see the old image or the new one.
    final = image_dir(suite)
    old = state.IMAGE_CACHE / f".{suite}.old"
    remove_tree(old)
    if final.exists():
        final.rename(old)
    partial.rename(final)
    remove_tree(old)
    return final


def _write_sources(root: Path, suite: str) -> None:
    """deb822 sources with -updates and -security (debootstrap leaves them out)."""
    keyrings = root / "usr/share/keyrings"
    keyring = next(
        (f"/usr/share/keyrings/{name}" for name in
         ("debian-archive-keyring.pgp", "debian-archive-keyring.gpg")
         if (keyrings / name).exists()),
        None,
    )
    signed_by = f"Signed-By: {keyring}\n" if keyring else ""
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        "# Written by `hopthu lab` for the base image; the common role manages this file.\n"
        "Types: deb\n"
        f"URIs: {state.DEBIAN_MIRROR}\n"
        f"Suites: {suite} {suite}-updates\n"
        "Components: main\n"
        f"{signed_by}"
        "\n"
        "Types: deb\n"
        f"URIs: {state.SECURITY_MIRROR}\n"
        f"Suites: {suite}-security\n"
        "Components: main\n"
        f"{signed_by}"
    )
    (root / "etc/apt/sources.list").unlink(missing_ok=True)


def _customise(root: Path, suite: str, proxy: str | None, log: Path) -> None:
    """Apply updates and set up units, inside the image (nspawn, not --boot).

    nspawn rather than chroot: maintainer scripts get a real /proc, /sys and
    /dev. No private network: apt reaches the proxy on the bridge address.
    """
    apt_options = "-o Acquire::Retries=3"
    if proxy:
        apt_options += f" -o Acquire::http::Proxy={proxy}"
    script = f"""
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get {apt_options} update
apt-get {apt_options} -y -o Dpkg::Options::=--force-confold dist-upgrade
apt-get clean
# The package lists are a third of the image and stale within days; every
# clone would copy them. Deploys refresh them (update_cache) before installing.
find /var/lib/apt/lists -maxdepth 1 -type f -delete
systemctl enable systemd-networkd.service ssh.service
systemctl mask {' '.join(MASKED_UNITS)}
"""
    run(
        ["systemd-nspawn", "--quiet", "-D", str(root), "--register=no", "--keep-unit",
         f"--machine=hopthu-image-{suite}", "--resolv-conf=off", "--timezone=off",
         "--link-journal=no", "--console=pipe", "/bin/sh", "-c", script],
        timeout=CUSTOMISE_TIMEOUT, what=f"update and set up the {suite} image", log=log,
    )


def _make_host_neutral(root: Path) -> None:
    """Remove what must differ per host; each clone writes its own."""
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/hostname").write_text("localhost\n")
    # debootstrap copied this machine's resolver; the hosts have no DNS until
    # the lab's own resolver (peer1) is deployed.
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_text("# The lab hosts have no DNS server yet (hopthu lab).\n")
