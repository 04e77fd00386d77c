"""Copy and remove root filesystems, carefully.

A clone is a plain directory tree (`cp -a` of the cached image: LAB.md
"Disk" measured seconds for it), so removing one is `rm -rf`. Before that,
check that no process still runs inside it and nothing is mounted below it:
`rm -rf` through a live bind mount would delete the files of whatever is
mounted there.
"""

from __future__ import annotations

from pathlib import Path

from hopthu.lab.errors import LabError
from hopthu.lab.processes import rooted_in, run


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            # Field 5 is the mount point; spaces in it are written as \040.
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix) or point == prefix.rstrip("/"):
                found.append(point)
    return found


def copy_tree(source: Path, target: Path, *, timeout: float = 600.0) -> None:
    """`cp -a --reflink=auto`: a real copy, shared blocks where the filesystem can."""
    run(["cp", "-a", "--reflink=auto", str(source), str(target)], timeout=timeout,
        what=f"copy {source} to {target}")


def remove_tree(path: Path, *, timeout: float = 600.0) -> None:
    if not path.exists() and not path.is_symlink():
        return
    busy = rooted_in(path)
    if busy:
        raise LabError(
            f"cannot remove {path}: processes {busy} still run inside it; "
            f"stop them first (`hopthu lab down` stops every lab host)"
        )
    mounted = mounts_under(path)
    if mounted:
        raise LabError(
            f"cannot remove {path}: something is mounted inside it ({', '.join(mounted)}); "
            f"unmount it first (`umount -R {mounted[0]}`)"
        )
    run(["rm", "-rf", "--one-file-system", str(path)], timeout=timeout,
        what=f"remove {path}")
