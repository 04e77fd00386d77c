"""Run commands with a time limit, and track the lab's long-lived processes.

The machine has no systemd as PID 1 (LAB.md), so nothing supervises the
lab's daemons: each is started in its own session, its PID goes to a file,
and every later command checks that PID against /proc before trusting it
(a PID can be reused after a reboot or a crash). Every wait here is bounded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from hopthu.lab.errors import LabError


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    what: str,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion within `timeout` seconds.

    `what` names the step for the error message. With `log`, output is
    appended to that file (long commands such as debootstrap) instead of
    being captured.
    """
    full_env = None if env is None else {**os.environ, **env}
    try:
        if log is not None:
            with open(log, "a") as out:
                result = subprocess.run(
                    list(argv), check=False, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    text=True, timeout=timeout, env=full_env,
                )
        else:
            result = subprocess.run(
                list(argv), check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout, env=full_env,
            )
    except FileNotFoundError:
        raise LabError(f"{what}: command {argv[0]!r} not found; run `hopthu lab up` "
                       f"to see which packages to install", exit_code=2) from None
    except subprocess.TimeoutExpired:
        where = f"; see {log}" if log else ""
        raise LabError(f"{what}: `{' '.join(argv)}` did not finish within {timeout:.0f} s"
                       f"{where}") from None
    if check and result.returncode != 0:
        if log is not None:
            detail = f"its output is in {log}:\n{tail(log)}"
        else:
            detail = (result.stderr or result.stdout or "").strip()[-2000:]
        raise LabError(f"{what}: `{' '.join(argv)}` exited with {result.returncode}: {detail}")
    return result


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, without terminal colour codes."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07?|\r", "", text)
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def spawn(argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start a long-lived process in its own session and return its PID.

    `start_new_session` is the `setsid` LAB.md asks for: the process does not
    die with the terminal or the command that started it. Its output goes to
    `log`.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} started: {' '.join(argv)}\n")
        out.flush()
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
            env=None if env is None else {**os.environ, **env},
        )
    return process.pid


def is_alive(pid: int) -> bool:
    """Whether `pid` is a live process.

    A process that exited but was never reaped (nothing here reaps orphans
    reliably without systemd as PID 1) stays in /proc as a zombie: count it
    as dead.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def find(match: Callable[[list[str]], bool]) -> list[int]:
    """Live processes whose command line satisfies `match`."""
    found = []
    for pid in all_pids():
        argv = cmdline(pid)
        if argv and match(argv) and is_alive(pid):
            found.append(pid)
    return sorted(found)


def root_id(pid: int) -> tuple[int, int] | None:
    """(device, inode) of the process's root directory, or None if it is gone.

    Not readlink(/proc/PID/root): for a process in another mount namespace
    (every process of a booted host) that reads "/", whatever its root is.
    stat() through the link reaches the real directory.
    """
    try:
        info = os.stat(f"/proc/{pid}/root/")
    except OSError:
        return None
    return info.st_dev, info.st_ino


def rooted_in(directory: Path) -> list[int]:
    """Live processes whose root directory is `directory`.

    Every process of a booted host has the host's clone as its root, so this
    finds what still runs in a clone, even after its nspawn died (a SIGKILLed
    nspawn leaves the host's systemd running, orphaned).
    """
    try:
        info = os.stat(directory)
    except OSError:
        return []
    wanted = (info.st_dev, info.st_ino)
    return sorted(pid for pid in all_pids() if root_id(pid) == wanted and is_alive(pid))


def container_inits() -> list[int]:
    """Every live init of an nspawn container: PID 1 of its own PID namespace,
    started with container=systemd-nspawn in its environment."""
    found = []
    for pid in all_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        nspid = next((line.split()[1:] for line in status.splitlines()
                      if line.startswith("NSpid:")), [])
        if (len(nspid) > 1 and nspid[-1] == "1" and b"container=systemd-nspawn\0" in environ
                and is_alive(pid)):
            found.append(pid)
    return sorted(found)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def tracked_pid(pid_file: Path, match: Callable[[list[str]], bool]) -> int | None:
    """The PID in `pid_file` if it is alive and still the expected program.

    Otherwise look for an untracked process that matches (the PID file lost
    in an interrupted `up`) and adopt it; if there is none, remove the stale
    file and return None.
    """
    pid = read_pid(pid_file)
    if pid is not None and is_alive(pid) and match(cmdline(pid)):
        return pid
    orphans = find(match)
    if orphans:
        write_pid(pid_file, orphans[0])
        return orphans[0]
    pid_file.unlink(missing_ok=True)
    return None


def terminate(pid: int, *, grace: float, sig: int = signal.SIGTERM) -> str:
    """Stop `pid`: `sig`, wait up to `grace` seconds, then SIGKILL.

    Returns how it ended: "stopped" or "killed after N s".
    """
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return "already gone"
    if wait_gone(pid, grace):
        return "stopped"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    if not wait_gone(pid, 10.0):
        raise LabError(f"process {pid} ({' '.join(cmdline(pid))}) survived SIGKILL for 10 s; "
                       f"it is probably stuck in the kernel (D state): check `ps -o stat {pid}`")
    return f"killed after {grace:.0f} s"


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)
