"""Mail throughput into the full delivery path (with and without filtering), against a bare SMTP sink.

    sudo .venv/bin/python benchmarks/mailflow.py [--host mail1] [--messages 2000] [--sessions 10]

What it measures, in one run on one lab host (mail1 by default):

1. **Bare SMTP sink, discards** (the baseline). Postfix's `smtp-sink` listens
   on the host's own address on a spare port (2525) and discards every
   message: no postscreen, no queue file, no cleanup, no delivery. It is the
   ceiling of the SMTP dialogue itself on this host, with this load generator,
   message size and concurrency: what "a bare Postfix that discards" costs at
   the least.
2. **The full delivery path**: the same load into port 25 of the host's public
   address, i.e. postscreen -> smtpd (every restriction an Internet sender
   meets: HELO, sender domain in DNS, recipient lookup, the quota-status
   policy, milters if any) -> cleanup -> queue -> qmgr -> LMTP -> Dovecot ->
   the recipient's Maildir. Two figures:
   - accepted msg/s: messages / smtp-source's wall time (every message got
     its 250 after DATA, so it is queued on disk);
   - delivered msg/s: messages / time until the last of them is in the
     Maildir (the ctime of its file in new/) with the queue empty again.

3. **Delivery only**, when the host has milters (Rspamd): the same full path
   once more with Postfix's milters switched off (`postconf -e smtpd_milters=`
   and a reload, restored afterwards even on failure), so the cost of
   filtering is the ratio of the two. For those seconds the lab host accepts
   unscanned mail: a lab benchmark only.

It also records the resident memory of the host's processes per systemd
service (from /proc; the lab's hosts share one cgroup tree, so cgroup figures
would count the twin's processes too). RSS counts shared pages once per
process, so the total is an upper bound.

The load generator is Postfix's `smtp-source`, run on the host itself: the
`postfix` package has it on every mail host, and nothing has to be installed
on client1. It connects to the host's public address, not to loopback: from
127.0.0.1 the client would be in `mynetworks`, which postscreen and smtpd's
restrictions wave through (LAB.md); from its own public address it is an
outside client and takes the MX path. smtp-source opens one connection per
message (its default, as most Internet senders do), `--sessions` at a time.
Generator and server share the host's CPUs in both measurements alike.

Before the timed full-path run one warm-up message goes the same way: a new
client waits out postscreen's greeting test (6 s) once, then is cached for a
day, so the timed run measures postscreen's steady state, not a one-off wait.

The messages go to one lab mailbox (`--recipient`, by default the unit
mailbox vanphong@, which no lab test reads) with a Subject that carries the
run's id. Afterwards exactly those messages are expunged through Dovecot
(`doveadm expunge ... header Subject <run id>`), which keeps its index and
quota right; the script then checks that none of the run's files remain and
that the mailbox's quota usage is what it was. It refuses to start while the
host's mail queue is not empty, while it has delivered other mail in the last
minute (another test or benchmark is running, and would share the CPUs), or
when the sink port is taken; mail to anyone else during the run is counted and
flagged. Every step has a timeout.

Results are printed and written to benchmarks/results/mailflow-<UTC>.json.
LAB.md's reference on 2 vCPUs without Rspamd (`-s 20 -m 5000 -l 4096`):
about 570 msg/s accepted and 350 msg/s delivered.

This one file is also the program that runs on the host: the controller sends
its own source to `python3 - --on-host` over SSH, and that part uses only the
standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Subject prefix of every benchmark message; the run id follows it.
SUBJECT_TAG = "hopthu-bench"
#: Seconds to wait for smtp-sink to listen, and for the warm-up message.
START_TIMEOUT = 10
WARMUP_TIMEOUT = 60
#: How often the delivery watcher looks at the Maildir and the queue (s).
POLL_INTERVAL = 0.2


# --- On the lab host (standard library only) -------------------------------------------


def _queue_size() -> int:
    """Messages in the Postfix queue (postqueue -j prints one JSON object per message)."""
    out = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def _smtp_source(p: dict[str, Any], target: str, subject: str, messages: int,
                 sessions: int) -> float:
    """Send `messages` with smtp-source; the wall time in seconds."""
    argv = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(p["size"]),
            "-S", subject, "-f", p["sender"], "-t", p["recipient"], "-M", p["helo"], target]
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=p["timeout"],
                          check=False)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return seconds


class _Maildir:
    """The run's messages in a Maildir, found by their Subject, with their ctimes."""

    def __init__(self, path: str, subject: str) -> None:
        self.path = Path(path)
        self.needle = f"\nSubject: {subject}".encode()
        self.ctimes: dict[str, int] = {}  # base name (before ":2,") -> ctime in ns
        self.skipped: set[str] = set()

    def scan(self) -> int:
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError), os.scandir(self.path / sub) as it:
                for entry in it:
                    base = entry.name.split(":", 1)[0]
                    if base in self.ctimes or base in self.skipped:
                        continue
                    try:
                        with open(entry.path, "rb") as f:
                            head = f.read(8192)
                        ctime = entry.stat().st_ctime_ns
                    except FileNotFoundError:
                        continue  # moved new/ -> cur/ meanwhile: the next scan finds it
                    if self.needle in head:
                        self.ctimes[base] = ctime
                    else:
                        self.skipped.add(base)
        return len(self.ctimes)


def _file_count(path: str) -> int:
    return sum(len(os.listdir(Path(path) / sub)) for sub in ("new", "cur")
               if (Path(path) / sub).is_dir())


def _quota_storage(recipient: str) -> str:
    out = subprocess.run(["doveadm", "-f", "flow", "quota", "get", "-u", recipient],
                         capture_output=True, text=True, timeout=30, check=False).stdout
    for line in out.splitlines():
        if "Type=STORAGE" in line:
            return line.split("Value=", 1)[1].split()[0]
    return "unknown"


def _service_cpu() -> dict[str, int]:
    """CPU time (µs) each systemd service's cgroup has used (cgroup v2 cpu.stat).

    It counts processes that have exited too (smtpd, cleanup, lmtp come and
    go), which per-process figures would miss. The SSH session that runs
    smtp-source is ssh.service.
    """
    for base in (Path("/sys/fs/cgroup/system.slice"), Path("/sys/fs/cgroup/unified/system.slice")):
        if base.is_dir():
            break
    else:
        return {}
    usage = {}
    for stat in base.glob("*.service/cpu.stat"):
        for line in stat.read_text().splitlines():
            if line.startswith("usage_usec "):
                usage[stat.parent.name.removesuffix(".service")] = int(line.split()[1])
    return usage


def _deliveries_since(since: float, recipient: str | None = None) -> int:
    """Postfix deliveries logged since `since` (epoch s); to others than `recipient` if given."""
    out = subprocess.run(["journalctl", "--since", f"@{since:.0f}", "-o", "cat", "--no-pager"],
                         capture_output=True, text=True, timeout=60, check=False).stdout
    lines = [line for line in out.splitlines() if "postfix/" in line and " status=" in line]
    if recipient:
        lines = [line for line in lines if f"to=<{recipient}>" not in line]
    return len(lines)


def _wait_delivered(p: dict[str, Any], maildir: _Maildir, expected: int,
                    timeout: float) -> bool:
    """Wait until `expected` run messages are in the Maildir and the queue is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if maildir.scan() >= expected and _queue_size() == 0:
            return True
        time.sleep(POLL_INTERVAL)
    return False


def _sink(p: dict[str, Any], subject: str) -> dict[str, Any]:
    """The baseline: the same load into smtp-sink, which discards it."""
    listen = f"{p['address']}:{p['sink_port']}"
    sink = subprocess.Popen(["smtp-sink", "-u", "postfix", listen, "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection((p["address"], p["sink_port"]), timeout=1).close()
                break
            except OSError:
                if sink.poll() is not None or time.monotonic() > deadline:
                    sink.kill()
                    _, err = sink.communicate(timeout=5)
                    raise RuntimeError(f"smtp-sink did not listen on {listen}: "
                                       f"{err.strip()}") from None
                time.sleep(0.1)
        seconds = _smtp_source(p, listen, subject, p["messages"], p["sessions"])
    finally:
        sink.terminate()
        try:
            sink.wait(timeout=5)
        except subprocess.TimeoutExpired:
            sink.kill()
            sink.wait(timeout=5)
    return {"target": listen, "seconds": round(seconds, 3),
            "per_second": round(p["messages"] / seconds, 1)}


def _full_path(p: dict[str, Any], subject: str) -> dict[str, Any]:
    """The same load into port 25 (postscreen) and on to the Maildir."""
    target = f"{p['address']}:25"
    maildir = _Maildir(p["maildir"], subject)
    # Warm-up: postscreen's greeting test once, then the client is cached.
    _smtp_source(p, target, f"{subject} warm-up", 1, 1)
    if not _wait_delivered(p, maildir, 1, WARMUP_TIMEOUT):
        raise RuntimeError(f"the warm-up message did not reach {p['maildir']} within "
                           f"{WARMUP_TIMEOUT} s; see `journalctl -u postfix -u dovecot`")
    warm = maildir.scan()
    cpu_before = _service_cpu()
    start_ns = time.time_ns()
    accepted_seconds = _smtp_source(p, target, subject, p["messages"], p["sessions"])
    done = _wait_delivered(p, maildir, warm + p["messages"], p["timeout"])
    wall = (time.time_ns() - start_ns) / 1e9
    cpu_after = _service_cpu()
    delivered = maildir.scan() - warm
    cpu = {unit: (cpu_after[unit] - cpu_before.get(unit, 0)) / 1e6 for unit in cpu_after}
    busy = {unit: round(seconds * 1000 / p["messages"], 2)
            for unit, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]) if seconds > 0.05}
    result: dict[str, Any] = {
        "target": target,
        "accepted": {"seconds": round(accepted_seconds, 3),
                     "per_second": round(p["messages"] / accepted_seconds, 1)},
        "delivered_messages": delivered,
        "queue_left": _queue_size(),
        # Where the CPU went from the first message sent to the last delivered
        # (ms per message, by systemd service; ssh is smtp-source), and how
        # busy the host's CPUs were (1.0: all of them, all the time).
        "cpu_ms_per_message": busy,
        "cpu_busy_fraction": round(sum(cpu.values()) / (wall * (os.cpu_count() or 1)), 2),
    }
    if not done:
        result["error"] = (f"only {delivered} of {p['messages']} messages delivered, "
                           f"{result['queue_left']} in the queue after {p['timeout']} s")
        return result
    last = max(c for c in maildir.ctimes.values())
    delivered_seconds = (last - start_ns) / 1e9
    result["delivered"] = {"seconds": round(delivered_seconds, 3),
                           "per_second": round(p["messages"] / delivered_seconds, 1)}
    return result


def _service_rss() -> dict[str, int]:
    """Resident memory (KiB) of this host's processes, summed per systemd service.

    From /proc, not from the cgroups: the lab's hosts share one cgroup tree,
    so a service's cgroup would count the twin host's processes too.
    """
    usage: dict[str, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            rss = next((int(line.split()[1]) for line in status.read_text().splitlines()
                        if line.startswith("VmRSS:")), 0)
            cgroup = (status.parent / "cgroup").read_text()
        except (OSError, ValueError):
            continue
        unit = next((part for part in cgroup.replace("\n", "/").split("/")
                     if part.endswith(".service")), "other")
        usage[unit.removesuffix(".service")] = usage.get(unit.removesuffix(".service"), 0) + rss
    return dict(sorted(usage.items(), key=lambda kv: -kv[1]))


@contextlib.contextmanager
def _without_milters() -> Any:
    """Postfix without its milters (Rspamd) for one measurement, restored afterwards.

    For the "delivery only" column: the same path minus filtering. For those
    seconds the lab host accepts unscanned mail, which is why this is a lab
    benchmark only; the previous values are put back even on failure.
    """
    keys = ("smtpd_milters", "non_smtpd_milters")
    saved = {k: subprocess.run(["postconf", "-h", k], capture_output=True, text=True,
                               check=True).stdout.strip() for k in keys}
    subprocess.run(["postconf", "-e"] + [f"{k}=" for k in keys], check=True)
    subprocess.run(["postfix", "reload"], capture_output=True, check=True)
    try:
        yield saved
    finally:
        subprocess.run(["postconf", "-e"] + [f"{k}={v}" for k, v in saved.items()], check=True)
        subprocess.run(["postfix", "reload"], capture_output=True, check=True)


def _clean_up(p: dict[str, Any], subject_tag: str) -> dict[str, Any]:
    """Expunge exactly this run's messages through Dovecot; check none is left."""
    # The queue may still hold run messages after a timeout: let it drain first.
    deadline = time.monotonic() + 60
    while _queue_size() and time.monotonic() < deadline:
        time.sleep(1)
    proc = subprocess.run(["doveadm", "expunge", "-u", p["recipient"], "mailbox", "INBOX",
                           "header", "Subject", subject_tag],
                          capture_output=True, text=True, timeout=300, check=False)
    left = _Maildir(p["maildir"], subject_tag).scan()
    return {"doveadm_rc": proc.returncode, "doveadm_err": proc.stderr.strip()[-300:],
            "run_files_left": left}


def on_host(p: dict[str, Any]) -> dict[str, Any]:
    """The whole measurement on the lab host; a JSON-able dict."""
    lock = open("/run/lock/hopthu-mailflow.lock", "w")  # noqa: SIM115 (held to the end)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return {"error": "another mailflow benchmark is running on this host"}
    queued = _queue_size()
    if queued:
        return {"error": f"the mail queue holds {queued} messages: another test or "
                         f"benchmark is running; try again when `postqueue -p` is empty"}
    recent = _deliveries_since(time.time() - p["quiet"])
    if recent and not p["allow_busy"]:
        return {"error": f"the host delivered {recent} messages in the last {p['quiet']} s: "
                         f"someone is using it, and the figures would be theirs too; try "
                         f"again later (or --allow-busy to measure anyway)"}
    with socket.socket() as probe:
        try:
            probe.bind((p["address"], p["sink_port"]))
        except OSError as exc:
            return {"error": f"sink port {p['sink_port']} is taken ({exc}); "
                             f"give another with --sink-port"}
    subject = f"{SUBJECT_TAG} {p['run_id']}"
    before = {"files": _file_count(p["maildir"]), "quota_storage": _quota_storage(p["recipient"]),
              "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
    result: dict[str, Any] = {"before": before}
    started = time.time()
    try:
        result["sink"] = _sink(p, f"{subject} sink")
        result["full"] = _full_path(p, subject)
        result["memory_kib"] = _service_rss()
        if p["milters"] and "error" not in result["full"]:
            with _without_milters():
                result["unfiltered"] = _full_path(p, f"{subject} unfiltered")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        result["error"] = str(exc)
    finally:
        result["cleanup"] = _clean_up(p, subject)
        result["after"] = {"files": _file_count(p["maildir"]),
                           "quota_storage": _quota_storage(p["recipient"])}
        # Mail to anyone else during the run shared the CPUs with it.
        result["other_deliveries_during_run"] = _deliveries_since(started, p["recipient"])
    return result


# --- On the controller ---------------------------------------------------------------------


def _facts(host: str, recipient: str) -> dict[str, Any]:
    from hopthu.lab import ssh_run

    script = (
        ". /etc/os-release; echo \"$VERSION_CODENAME $(cat /etc/debian_version)\"; "
        "dpkg-query -W -f '${Version}\\n' postfix; dpkg-query -W -f '${Version}\\n' dovecot-core; "
        "nproc; "
        "systemctl is-active postfix.service dovecot.service | tr '\\n' ' '; echo; "
        "postconf -h smtpd_milters; "
        f"doveadm mailbox path -u {recipient} INBOX"
    )
    result = ssh_run(host, script, timeout=60)
    lines = result.out.splitlines()
    if result.rc != 0 or len(lines) < 7:
        raise SystemExit(f"{host}: cannot read the host's facts (rc {result.rc}):\n"
                         f"{result.err or result.out}\nIs the mail core deployed? "
                         f"`hopthu deploy --inventory lab --limit {host}`")
    codename, release = lines[0].split()
    services = lines[4].split()
    if services != ["active", "active"]:
        raise SystemExit(f"{host}: postfix and dovecot must run (they are: {services})")
    return {"debian": {"codename": codename, "release": release},
            "packages": {"postfix": lines[1], "dovecot-core": lines[2]},
            "cpus": int(lines[3]), "smtpd_milters": lines[5], "maildir": lines[6]}


def _commit() -> str:
    from hopthu import ROOT

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False, timeout=30).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _table(record: dict[str, Any]) -> str:
    p, r = record["parameters"], record["figures"]
    rows = [("path", "msg/s", "seconds")]
    rows.append(("bare SMTP sink, discards (smtp-sink)", f"{r['sink']['per_second']:.1f}",
                 f"{r['sink']['seconds']:.2f}"))
    full = r["full"]
    label = "full filtering" if "unfiltered" in r else "full path"
    rows.append((f"{label}, accepted (25 -> queue)", f"{full['accepted']['per_second']:.1f}",
                 f"{full['accepted']['seconds']:.2f}"))
    if "delivered" in full:
        rows.append((f"{label}, delivered (-> Maildir)",
                     f"{full['delivered']['per_second']:.1f}",
                     f"{full['delivered']['seconds']:.2f}"))
    bare = r.get("unfiltered", {})
    if "delivered" in bare:
        rows.append(("delivery only, no milter, accepted", f"{bare['accepted']['per_second']:.1f}",
                     f"{bare['accepted']['seconds']:.2f}"))
        rows.append(("delivery only, no milter, delivered",
                     f"{bare['delivered']['per_second']:.1f}",
                     f"{bare['delivered']['seconds']:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    packages, debian = record["packages"], record["debian"]
    title = (f"{record['host']} (Debian {debian['release']} {debian['codename']}, "
             f"postfix {packages['postfix']}, dovecot {packages['dovecot-core']}, "
             f"{record['cpus']} CPUs): {p['messages']} messages of {p['size']} bytes, "
             f"{p['sessions']} sessions")
    lines = [title]
    for row in rows:
        lines.append(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}")
    ratios = record["ratios"]
    lines.append("  ratio to the bare sink: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    if r.get("memory_kib"):
        top = list(r["memory_kib"].items())[:8]
        lines.append(f"  memory (RSS) {sum(r['memory_kib'].values()) / 1024:.0f} MiB in all: "
                     + ", ".join(f"{unit} {kib / 1024:.0f}" for unit, kib in top) + " MiB")
    if full.get("cpu_ms_per_message"):
        lines.append("  full path CPU per message: "
                     + ", ".join(f"{unit} {ms:.1f} ms"
                                 for unit, ms in full["cpu_ms_per_message"].items())
                     + f" (ssh = smtp-source); CPUs {full['cpu_busy_fraction']:.0%} busy")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="mail1", help="the lab mail host (default mail1)")
    parser.add_argument("--messages", type=int, default=2000, help="messages per measurement")
    parser.add_argument("--sessions", type=int, default=10, help="parallel SMTP sessions")
    parser.add_argument("--size", type=int, default=4096, help="message length in bytes")
    parser.add_argument("--recipient", help="the lab mailbox (default vanphong@<mail domain>)")
    parser.add_argument("--sender", default="bench@peer.test",
                        help="envelope sender: outside the ministry's domain, and resolvable "
                             "(smtpd checks the sender domain in DNS)")
    parser.add_argument("--sink-port", type=int, default=2525, help="smtp-sink's spare port")
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds each of sending and delivering may take")
    parser.add_argument("--quiet", type=int, default=60,
                        help="refuse to start if the host delivered mail in these last seconds")
    parser.add_argument("--allow-busy", action="store_true",
                        help="measure even if the host is delivering other mail")
    args = parser.parse_args(argv)
    if not 1 <= args.messages <= 100_000 or not 1 <= args.sessions <= 100:
        parser.error("--messages must be 1..100000 and --sessions 1..100")

    from hopthu import ROOT, inventory
    from hopthu.lab import ssh_run
    from hopthu.settings import load_host

    address = inventory.load("lab").hosts[args.host].address
    domain = load_host("lab", args.host).values["hopthu__mail_domain"]
    recipient = args.recipient or f"vanphong@{domain}"
    facts = _facts(args.host, recipient)
    params = {
        "address": address, "messages": args.messages, "sessions": args.sessions,
        "size": args.size, "sender": args.sender, "recipient": recipient,
        "helo": "bench.peer.test", "sink_port": args.sink_port, "timeout": args.timeout,
        "maildir": facts["maildir"], "run_id": uuid.uuid4().hex[:12],
        "quiet": args.quiet, "allow_busy": args.allow_busy,
        "milters": bool(facts["smtpd_milters"]),
    }
    print(f"{args.host}: {args.messages} messages, {args.sessions} sessions, "
          f"{args.size} bytes, to {recipient}; run {params['run_id']} ...", flush=True)
    # Sink, warm-up, full run, delivery wait and clean-up, each bounded.
    budget = 4 * args.timeout + WARMUP_TIMEOUT + 400
    source = Path(__file__).read_text()
    result = ssh_run(args.host, ["timeout", str(budget), "python3", "-", "--on-host",
                                 json.dumps(params)], input=source, timeout=budget + 30)
    try:
        figures = json.loads(result.out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"{args.host}: the benchmark failed (rc {result.rc}):\n"
                         f"{result.err[-2000:] or result.out[-2000:]}") from None
    cleanup = figures.get("cleanup", {})
    if cleanup.get("run_files_left"):
        print(f"WARNING: {cleanup['run_files_left']} benchmark messages are left in "
              f"{recipient}'s INBOX; remove them with `doveadm expunge -u {recipient} "
              f"mailbox INBOX header Subject '{SUBJECT_TAG} {params['run_id']}'`",
              file=sys.stderr)
    if "error" in figures or "error" in figures.get("full", {}):
        raise SystemExit(f"{args.host}: {figures.get('error') or figures['full']['error']}\n"
                         f"{json.dumps(figures, indent=2)}")

    if figures.get("other_deliveries_during_run"):
        print(f"WARNING: {figures['other_deliveries_during_run']} other messages were delivered "
              f"on {args.host} during the run: the figures are disturbed; run again when the "
              f"host is quiet", file=sys.stderr)
    sink_rate = figures["sink"]["per_second"]
    full = figures["full"]
    ratios = {"accepted/bare": round(full["accepted"]["per_second"] / sink_rate, 3),
              "delivered/bare": round(full["delivered"]["per_second"] / sink_rate, 3)}
    unfiltered = figures.get("unfiltered", {})
    if "delivered" in unfiltered:
        ratios["delivered/unfiltered"] = round(
            full["delivered"]["per_second"] / unfiltered["delivered"]["per_second"], 3)
    now = datetime.now(UTC)
    record = {
        "benchmark": "mailflow",
        "when": now.isoformat(timespec="seconds"),
        "commit": _commit(),
        "host": args.host,
        "address": address,
        **{k: facts[k] for k in ("debian", "packages", "cpus", "smtpd_milters")},
        "parameters": {k: params[k] for k in ("messages", "sessions", "size", "sender",
                                              "recipient", "helo", "sink_port", "run_id")},
        "figures": figures,
        "ratios": ratios,
    }
    print(_table(record))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"mailflow-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--on-host"]:
        print(json.dumps(on_host(json.loads(sys.argv[2]))))
    else:
        raise SystemExit(main())
