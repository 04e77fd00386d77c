"""Check, before touching anything, that this machine can run the lab.

The lab tool does not install host packages (CI's `.ci/run` does); it names
what is missing and the one `apt-get install` line that fixes it.
"""

from __future__ import annotations

import os
import shutil

from hopthu.lab.errors import LabError

#: command -> the Debian package that provides it.
COMMANDS: dict[str, str] = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "apt-cacher-ng": "apt-cacher-ng",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "ss": "iproute2",
    "nft": "nftables",
    "setpriv": "util-linux",
}

#: What `down` and `status` need: they must work on a half-installed machine.
TEARDOWN_COMMANDS = ("ip", "nft")


def check(commands: tuple[str, ...] | None = None, *, need_root: bool = True) -> None:
    """Raise LabError (exit 2) naming what is missing and how to install it."""
    problems = []
    if need_root and os.geteuid() != 0:
        problems.append(
            "the lab needs root: it creates a bridge, nftables rules and containers "
            "(run it with sudo or as root)"
        )
    wanted = commands if commands is not None else tuple(COMMANDS)
    missing = [name for name in wanted if shutil.which(name) is None]
    if missing:
        packages = sorted({COMMANDS[name] for name in missing})
        problems.append(
            f"missing command(s): {', '.join(missing)}. Install them with:\n"
            f"    apt-get install {' '.join(packages)}"
        )
    if problems:
        raise LabError("\n".join(problems), exit_code=2)
