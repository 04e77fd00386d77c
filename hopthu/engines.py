"""`hopthu deploy`: run Ansible or pyinfra against an inventory.

Both engines read the same settings, so the settings are loaded and checked
here first, for every host of the inventory, before either engine starts:
a bad value stops the run before any host is contacted (DESIGN.md §2).

The engines themselves run as their own commands (``ansible-playbook`` and
``pyinfra``), exactly as an operator would run them by hand, so the wrapper
adds no behaviour of its own beyond the preflight and a one-line summary.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hopthu import ROOT

ENGINES = ("ansible", "pyinfra")


@dataclass
class DeployResult:
    engine: str
    returncode: int
    #: host -> number of changed tasks/operations
    changed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    output: str = ""

    @property
    def total_changed(self) -> int:
        return sum(self.changed.values())

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not any(self.failed.values())

    def explain(self, tail: int = 3000) -> str:
        """What a failed run's reader needs first: the failing tasks or
        operations with their messages, then the end of the output."""
        failures = failure_excerpt(self.output)
        head = f"{self.engine} exited {self.returncode}"
        if failures:
            head += f"; the failures:\n{failures}\n--- the output's end:"
        else:
            head += "; the output's end:"
        return f"{head}\n{self.output[-tail:]}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES, default="ansible", help="default: ansible")
    parser.add_argument("--inventory", "-i", default="lab", help="environment name or hosts.yml")
    parser.add_argument("--check", action="store_true", help="show what would change, change nothing")
    parser.add_argument("--diff", action="store_true", help="show the differences in files")
    parser.add_argument("--limit", "-l", help="only these hosts or groups (comma-separated)")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def engine_command(
    engine: str,
    hosts_file: Path,
    *,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    verbose: int = 0,
) -> list[str]:
    """The raw engine command the wrapper runs (the README documents the same)."""
    bindir = Path(sys.executable).parent
    if engine == "ansible":
        cmd = [str(bindir / "ansible-playbook"), "-i", str(hosts_file), str(ROOT / "site.yml")]
        check_flag = "--check"
    elif engine == "pyinfra":
        inventory_py = hosts_file.parent / "inventory.py"
        cmd = [str(bindir / "pyinfra"), "--yes", str(inventory_py), str(ROOT / "deploy.py")]
        check_flag = "--dry"
    else:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    # The other flags are spelled the same by both engines.
    if check:
        cmd.append(check_flag)
    if diff:
        cmd.append("--diff")
    if limit:
        cmd += ["--limit", limit]
    if verbose:
        cmd.append("-" + "v" * verbose)
    return cmd



_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def parse_ansible_recap(output: str) -> tuple[dict[str, int], dict[str, int]]:
    changed: dict[str, int] = {}
    failed: dict[str, int] = {}
    for line in output.splitlines():
        m = _RECAP.match(_ANSI.sub("", line).strip())
        if m and m.group(1) != "localhost":
            changed[m.group(1)] = int(m.group(3))
            failed[m.group(1)] = int(m.group(4)) + int(m.group(5))
    return changed, failed


_PYINFRA_HOST_CHANGES = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+(?P<text>.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_pyinfra_output(output: str, hosts: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Count changed operations per host from pyinfra's per-operation lines.

    pyinfra prints, for every operation, one line per host:
    ``[host] Success`` (the operation changed the host), ``[host] No changes``,
    or ``[host] Error``. With --dry it prints the operations it would run with
    ``[host] Success`` too, so the count is the number of changes proposed.
    """
    changed = {h: 0 for h in hosts}
    failed = {h: 0 for h in hosts}
    for raw in output.splitlines():
        line = _ANSI.sub("", raw)
        m = _PYINFRA_HOST_CHANGES.match(line)
        if not m or m.group("host") not in changed:
            continue
        text = m.group("text").strip()
        if text.startswith("Success"):
            changed[m.group("host")] += 1
        elif text.startswith("Error"):
            failed[m.group("host")] += 1
    return changed, failed


#: Lines that begin a new part of a run's output: a task or handler (Ansible),
#: an operation or stage (pyinfra).
_SECTION_START = ("TASK [", "RUNNING HANDLER [", "PLAY [", "PLAY RECAP", "--> ")
#: A host's result line: Ansible's failures, and the other results, which an
#: excerpt leaves out.
_ANSIBLE_FAILURE = re.compile(r"^(fatal|failed): \[[^\]]+\]")
_ANSIBLE_RESULT = re.compile(r"^(ok|changed|skipping|included|fatal|failed): \[")
_PYINFRA_ERROR = re.compile(r"^\s*\[[^\]]+\]\s+Error\b|^--> pyinfra error")


def _failed(section: list[str]) -> bool:
    """Whether a part of the output holds a failure nobody ignored."""
    for k, line in enumerate(section):
        if _PYINFRA_ERROR.match(line):
            return True
        if _ANSIBLE_FAILURE.match(line):
            after = next((x for x in section[k + 1:]
                          if x == "...ignoring" or _ANSIBLE_RESULT.match(x)), None)
            if after != "...ignoring":
                return True
    return False


_ANSIBLE_CHANGED = re.compile(r"^changed: \[(?P<host>[^\]]+)\]")
_PYINFRA_CHANGED = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+Success\b")


def _sections(output: str) -> list[list[str]]:
    """A run's output, colour codes gone, cut where each task, handler or
    operation begins; that line, less Ansible's row of stars, comes first."""
    sections: list[list[str]] = [[]]
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        if line.startswith(_SECTION_START):
            sections.append([])
            line = line.rstrip(" *")
        sections[-1].append(line)
    return sections


def changed_steps(output: str) -> list[str]:
    """Each task, handler or operation that changed a host, with the hosts:
    what a second run that should have changed nothing did change."""
    steps: list[str] = []
    for section in _sections(output):
        hosts = [m.group("host") for line in section
                 if (m := _ANSIBLE_CHANGED.match(line) or _PYINFRA_CHANGED.match(line))]
        if hosts:
            name = section[0] if section[0].startswith(_SECTION_START) else ""
            steps.append(f"{name} on {', '.join(dict.fromkeys(hosts))}")
    return steps


def failure_excerpt(output: str, limit: int = 6000) -> str:
    """The parts of a run's output that failed, "" when none did: each failed
    Ansible task or handler whole (its [ERROR] lines with the role file and
    line, the host and the message), less the other hosts' ok/changed lines,
    and ignored failures left out; each pyinfra operation that failed, with
    the command's own output. A long run's failure is otherwise buried
    thousands of lines above its recap."""
    parts = []
    for section in _sections(output):
        if not _failed(section):
            continue
        kept = [line for line in section
                if not (_ANSIBLE_RESULT.match(line) and not _ANSIBLE_FAILURE.match(line))]
        parts.append("\n".join(kept).strip())
    text = "\n\n".join(parts)
    return text if len(text) <= limit else text[:limit] + "\n[... more failures cut ...]"


def run_engine(
    engine: str,
    inventory: str | Path = "lab",
    *,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    verbose: int = 0,
    echo: bool = True,
) -> DeployResult:
    """Check the settings, then run one engine; return what changed per host.

    Raises SettingsError (before any host is contacted) on bad settings.
    """
    from hopthu import inventory as inventory_mod
    from hopthu.settings import load_inventory

    hosts_file = inventory_mod.resolve(inventory)
    load_inventory(hosts_file)  # raises SettingsError: nothing has been contacted yet
    inv = inventory_mod.load(hosts_file)
    targets = _limit_hosts(inv, limit)
    cmd = engine_command(engine, hosts_file, check=check, diff=diff, limit=limit, verbose=verbose)
    # Colour codes would break the recap parsing; the caller's environment
    # (molecule sets ANSIBLE_FORCE_COLOR=1) must not switch them back on.
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PYTHONUNBUFFERED="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, bufsize=1,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
    returncode = proc.wait()
    output = "".join(lines)
    if engine == "ansible":
        changed, failed = parse_ansible_recap(output)
    else:
        changed, failed = parse_pyinfra_output(output, targets)
    return DeployResult(engine, returncode, changed, failed, output)


def _limit_hosts(inv, limit: str | None) -> list[str]:
    if not limit:
        return list(inv.hosts)
    wanted: list[str] = []
    for part in limit.split(","):
        part = part.strip()
        if part in inv.hosts:
            wanted.append(part)
        elif part in inv.groups:
            wanted.extend(inv.hosts_in(part))
    return list(dict.fromkeys(wanted))


def run(args: argparse.Namespace) -> int:
    from hopthu.settings import SettingsError

    try:
        result = run_engine(
            args.engine, args.inventory, check=args.check, diff=args.diff,
            limit=args.limit, verbose=args.verbose,
        )
    except SettingsError as exc:
        print(f"hopthu deploy: the settings are wrong; no host was contacted.\n{exc}",
              file=sys.stderr)
        return 2
    mode = " (check mode: nothing was changed)" if args.check else ""
    summary = ", ".join(f"{h}: {n} changed" for h, n in sorted(result.changed.items()))
    status = "OK" if result.ok else "FAILED"
    if not result.ok:
        failures = failure_excerpt(result.output)
        if failures:
            # After thousands of lines of progress, the failures again, last.
            print(f"\nhopthu deploy [{args.engine}]: what failed\n{failures}\n")
    print(f"hopthu deploy [{args.engine}] {status}{mode}: {summary or 'no hosts'}")
    return result.returncode
