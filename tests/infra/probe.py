"""Probe TCP ports of a host from a vantage point: the controller or another host.

Each probe is one TCP handshake attempt, closed at once: nothing is sent, so
it is read-only for the target. The answer tells the firewall's verdict
apart from whether something listens:

- ``open``: the handshake completed (the firewall let it through, a service listens);
- ``closed``: a TCP reset (let through, nothing listens, or `reject with tcp reset`);
- ``filtered``: no answer before the timeout (the firewall dropped it);
- ``unreachable``: an ICMP error (the firewall rejected it).

`SCRIPT` is self-contained Python 3 with the standard library only, so it
runs on the controller and on a Debian host (python3 is in every image)
alike: ``python3 -c SCRIPT ADDRESS TIMEOUT PORT...`` prints one JSON object.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

SCRIPT = r"""
import errno, json, socket, sys
from concurrent.futures import ThreadPoolExecutor
address, timeout, ports = sys.argv[1], float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
family = socket.AF_INET6 if ":" in address else socket.AF_INET
def probe(port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except (socket.timeout, TimeoutError):
        return "filtered"
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
            return "unreachable"
        return "error: " + str(exc)
    finally:
        s.close()
with ThreadPoolExecutor(max_workers=32) as pool:
    results = dict(zip((str(p) for p in ports), pool.map(probe, ports)))
print(json.dumps(results))
"""

#: Outcomes that show the firewall let the SYN through.
PASSED = ("open", "closed")


def command(address: str, ports: list[int], timeout: float = 3.0) -> str:
    """The shell command that probes `ports` of `address` on a remote host."""
    args = " ".join(str(p) for p in sorted(set(ports)))
    return f"python3 -c {shlex.quote(SCRIPT)} {shlex.quote(address)} {timeout} {args}"


def from_controller(address: str, ports: list[int], timeout: float = 3.0) -> dict[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, address, str(timeout), *map(str, sorted(set(ports)))],
        capture_output=True, text=True, check=True, timeout=60 + timeout * 4,
    )
    return {int(k): v for k, v in json.loads(out.stdout).items()}


def parse(stdout: str) -> dict[int, str]:
    return {int(k): v for k, v in json.loads(stdout).items()}


def controller_source_address(address: str) -> str:
    """The address the controller's packets to `address` come from."""
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((address, 9))
        return str(s.getsockname()[0])
