"""Act from a lab host: probe ports, speak SMTP, read a mailbox, with bounded waits.

The lab tests look at the ministry's hosts from where real clients stand
(LAB.md: never from loopback): peer1 is "the Internet", client1 a machine in
the internal zone. Everything here runs over the lab's SSH (hopthu.lab) with
a timeout, so a hung host fails a test instead of hanging the run.

The port probe is the infra suite's (tests/infra/probe.py), loaded by its
path: one probe script, one meaning of open / closed / filtered.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from hopthu import ROOT
from hopthu.lab import SshResult, ssh_run

INFRA_DIR = ROOT / "tests" / "infra"

#: Seconds one SMTP conversation may take (swaks), and how long mail may take
#: to arrive in a mailbox.
SMTP_TIMEOUT = 60
DELIVERY_TIMEOUT = 90


def infra_module(name: str) -> ModuleType:
    """tests/infra/<name>.py, loaded by its path (it imports only the standard library)."""
    module_name = f"hopthu_lab_infra_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, INFRA_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"cannot load {INFRA_DIR}/{name}.py"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def run(host: str, command: str, timeout: float = 60.0) -> SshResult:
    """`command` on `host`; fails the test if SSH itself fails."""
    result = ssh_run(host, command, timeout=timeout)
    assert result.rc != 255, f"ssh {host} failed: {result.err.strip()}; is the lab up?"
    return result


def probe(source: str, address: str, ports: list[int], timeout: float = 3.0) -> dict[int, str]:
    """One TCP handshake from `source` to each port of `address`: open, closed, filtered..."""
    probe_mod = infra_module("probe")
    result = run(source, probe_mod.command(address, ports, timeout), timeout=60 + timeout * 4)
    assert result.rc == 0, f"the port probe failed on {source}: {result.err.strip()}"
    return probe_mod.parse(result.out)


def token() -> str:
    """A unique mark for one test message (its subject and Message-ID)."""
    return f"hopthu-{uuid.uuid4().hex[:16]}"


def swaks(source: str, *args: str, timeout: float = SMTP_TIMEOUT) -> SshResult:
    """swaks on `source` with `args`; its transcript is in `out`."""
    command = "swaks --timeout 30 " + " ".join(shlex.quote(a) for a in args)
    return run(source, command, timeout=timeout)


def wait_for(check: Callable[[], bool], timeout: float = DELIVERY_TIMEOUT,
             interval: float = 2.0) -> bool:
    """Call `check` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def maildir_has(host: str, maildir: str | Path, mark: str) -> bool:
    """Whether a message containing `mark` is in `maildir` (new/ or cur/) on `host`."""
    quoted = shlex.quote(str(maildir))
    result = run(host, f"grep -rlsF -- {shlex.quote(mark)} {quoted}/new {quoted}/cur",
                 timeout=30)
    return result.rc == 0 and bool(result.out.strip())


def smtp_reply(transcript: str, command: str = "RCPT TO") -> str:
    """The server's reply to `command` in a swaks transcript, e.g. "554 5.7.1 <x>: Relay ...".

    swaks marks what it sent with "->" ("~>" inside TLS) and what it got with
    "<-", "<**" for an error ("<~", "<~*" inside TLS). If the server refused
    an earlier command, the reply is that refusal: the command was never sent.
    """
    lines = transcript.splitlines()
    sent = [i for i, line in enumerate(lines)
            if line.lstrip().startswith(("->", "~>")) and command in line]
    start = sent[0] + 1 if sent else 0
    for line in lines[start:]:
        stripped = line.strip()
        if stripped.startswith(("<**", "<~*", "<-", "<~")):
            reply = stripped.lstrip("<-~* ").strip()
            if sent or stripped.startswith(("<**", "<~*")):
                return reply
    return ""
