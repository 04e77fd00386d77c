"""The program `hopthu status` runs on each host: it reads, it never changes.

It is sent as the text of this file (``python3 -c SOURCE SPEC``, through
``sudo -n`` where the login is not root), so it uses Python's standard
library only and imports nothing of hopthu: the hosts have Debian's python3
(Ansible needs it) and no hopthu package. SPEC is a JSON object that
hopthu/status_checks.py builds from the host's settings:

    {"units": ["postfix.service", ...],      # systemctl show, one block each
     "ports": [25, 465, ...],                # listening? and does a connect succeed?
     "queue": true,                          # postqueue -j: how many messages wait
     "certificate": "/etc/hopthu/tls/host.fullchain.pem",
     "disks": ["/", "/var", ...],            # the filesystems holding these paths
     "backup": {"last": ".../last.json", "enabled_since": ".../enabled-since"},
     "rspamd_url": "http://localhost:11334/ping",
     "clamd_socket": "/run/clamav/clamd.ctl",
     "proc_net": "/proc/net"}                # tests point these elsewhere

It prints one JSON object of facts on standard output. Judging them (what is
too full, too old, too many) is the controller's job, in
hopthu/status_checks.py, where the thresholds and the advice live and are
unit-tested.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

#: Seconds any one command or probe may take: the whole program stays well
#: under the controller's SSH timeout even when several daemons hang.
COMMAND_TIMEOUT = 20
CONNECT_TIMEOUT = 3

UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "Result", "ConditionResult")


def run(argv):
    """(exit status, stdout, a one-line error) of a command; 127 when it is not installed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return 127, "", f"{argv[0]} is not installed"
    except subprocess.TimeoutExpired:
        return 124, "", f"`{' '.join(argv)}` gave no answer within {COMMAND_TIMEOUT} s"
    lines = done.stderr.strip().splitlines()
    return done.returncode, done.stdout, lines[-1] if lines else ""


def release():
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key == "VERSION_ID":
                    return value.strip().strip('"')
    except OSError:
        pass
    return ""


def units(names):
    """unit -> its systemd properties; systemctl prints one block per unit, in order."""
    if not names:
        return {}, ""
    rc, out, err = run(["systemctl", "show", "--property=" + ",".join(UNIT_PROPERTIES),
                        "--", *names])
    blocks = [block for block in out.strip().split("\n\n") if block.strip()]
    if rc != 0 or len(blocks) != len(names):
        return {}, err or f"systemctl show exited {rc}"
    found = {}
    for name, block in zip(names, blocks):
        found[name] = dict(line.partition("=")[::2] for line in block.splitlines() if "=" in line)
    return found, ""


def _address(hex_address):
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def listening(proc_net):
    """port -> the local addresses a TCP socket listens on (state 0A is LISTEN)."""
    found = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc_net, name), encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) < 4 or fields[3] != "0A":
                        continue
                    address, _, port = fields[1].partition(":")
                    found.setdefault(int(port, 16), []).append(_address(address))
        except (OSError, ValueError):
            continue
    return found


def _connect_to(address):
    """Where to connect to reach a socket listening on `address` from this host."""
    if address == "0.0.0.0":
        return "127.0.0.1"
    if address == "::":
        return "::1"
    return address


def ports(wanted, proc_net):
    """port -> {"listening": [...addresses], "error": "" when a connect succeeded}."""
    sockets = listening(proc_net)
    found = {}
    for port in wanted:
        addresses = sorted(set(sockets.get(port, [])))
        error = "nothing listens"
        for address in addresses:
            try:
                with socket.create_connection((_connect_to(address), port),
                                              timeout=CONNECT_TIMEOUT):
                    error = ""
                    break
            except OSError as exc:
                error = f"{address}:{port}: {exc.strerror or exc}"
        found[str(port)] = {"listening": addresses, "error": error}
    return found


def queue():
    """How many messages Postfix's queue holds, and how many of them are deferred."""
    rc, out, err = run(["postqueue", "-j"])
    if rc != 0:
        return {"error": err or f"postqueue -j exited {rc}"}
    total = deferred = 0
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        total += 1
        deferred += entry.get("queue_name") == "deferred"
    return {"total": total, "deferred": deferred}


def certificate(path):
    """The first certificate of a PEM file (public: the controller reads its dates)."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {"error": "missing"}
    except OSError as exc:
        return {"error": exc.strerror or str(exc)}
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    if start < 0 or end not in text[start:]:
        return {"error": "holds no PEM certificate"}
    return {"pem": text[start:text.index(end, start) + len(end)] + "\n"}


def _mount_point(path):
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def disks(paths):
    """Each filesystem that holds one of `paths` (once), with df's idea of "used"."""
    found, seen = [], set()
    for path in paths:
        if not os.path.exists(path):
            continue
        mount = _mount_point(path)
        stat = os.statvfs(mount)
        if stat.f_blocks == 0 or (os.stat(mount).st_dev in seen):
            continue
        seen.add(os.stat(mount).st_dev)
        used = stat.f_blocks - stat.f_bfree
        # df's Use%: of the space an unprivileged user could have (root's reserve excluded).
        usable = used + stat.f_bavail
        found.append({"mount": mount, "path": path,
                      "used_percent": round(100.0 * used / usable, 1) if usable else 100.0,
                      "free_bytes": stat.f_bavail * stat.f_frsize,
                      "size_bytes": stat.f_blocks * stat.f_frsize})
    return found


def backup(files):
    """The backup tool's state file and when backups were enabled; absent ones as None."""
    found = {}
    for key in ("last", "enabled_since"):
        try:
            with open(files[key], encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            found[key] = None
            continue
        except OSError as exc:
            found[key] = {"error": exc.strerror or str(exc)}
            continue
        if key == "enabled_since":
            found[key] = text.strip()
            continue
        try:
            found[key] = json.loads(text)
        except ValueError as exc:
            found[key] = {"error": f"not JSON: {exc}"}
    return found


def rspamd(url):
    """"" when Rspamd's controller answers /ping with "pong", else why not."""
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT + 2) as reply:
            body = reply.read(64)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"{url}: {getattr(reason, 'strerror', None) or reason}"
    return "" if body.strip() == b"pong" else f"{url} answered {body[:40]!r}, not pong"


def clamd(path):
    """"" when clamd answers PING with PONG on its socket, else why not."""
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(CONNECT_TIMEOUT + 2)
            conn.connect(path)
            conn.sendall(b"zPING\0")
            reply = conn.recv(64)
    except OSError as exc:
        return exc.strerror or str(exc)
    return "" if reply.rstrip(b"\0\n") == b"PONG" else f"it answered {reply[:40]!r}"


def main(argv):
    spec = json.loads(argv[1])
    proc_net = spec.get("proc_net", "/proc/net")
    facts = {"now": time.time(), "release": release()}
    facts["units"], facts["units_error"] = units(spec.get("units", []))
    facts["ports"] = ports(spec.get("ports", []), proc_net)
    if spec.get("queue"):
        facts["queue"] = queue()
    if spec.get("certificate"):
        facts["certificate"] = certificate(spec["certificate"])
    facts["disks"] = disks(spec.get("disks", []))
    if spec.get("backup"):
        facts["backup"] = backup(spec["backup"])
    if spec.get("rspamd_url"):
        facts["rspamd"] = rspamd(spec["rspamd_url"])
    if spec.get("clamd_socket"):
        facts["clamd"] = clamd(spec["clamd_socket"])
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
