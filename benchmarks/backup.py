"""Benchmark: backups of a lab store (issue 6): first and unchanged backup, restore, size.

    sudo .venv/bin/python benchmarks/backup.py [--host mail1] [--seed 0]

What it measures, for the mail the store holds now (the lab corpus; with
--seed N, N more generated messages first, removed afterwards):

1. **First backup**: `hopthu-backup create` into an empty repository, so
   every chunk is new: the time a new site, or a store whose repository
   was lost, needs for its first night.
2. **Unchanged backup**: the same again at once: nothing changed, so borg's
   files cache and deduplication make it the cost of a quiet night (the
   snapshot of hard links, the manifest's sha256 of every file, borg's walk).
3. **Restore throughput**: `borg extract` of the whole archive on the store,
   through SSH and the append-only forced command, as `hopthu backup restore
   --all` does; MiB/s and messages/s. And the backup host's **drill** of the
   same archive (a local extraction and the manifest check).
4. **Size**: the repository on the backup host (`du`) against the raw
   mailboxes on the store (`du /var/vmail`), and borg's own original,
   compressed and deduplicated sizes.

It never touches the store's real repository, state or timer: the store's
tool runs as a Python module with its paths pointed at a scratch directory
(as tests/unit/test_backup_tool.py drives it), with a scratch key that the
backup host's authorized_keys forces, for the run, to `borg serve
--append-only` of a scratch repository, /srv/borg/.bench-<run>. The
authorized_keys file is put back byte for byte afterwards, even on failure,
and the scratch repository and directories are removed. The store's timer
must not start a backup meanwhile: run it outside the backup window.

Results are printed and written to benchmarks/results/backup-<UTC>.json.
Nothing is asserted: tests assert behaviour, this script measures.

First figures (Debian 13 lab, borg 1.4, 2 cores; benchmarks/results/backup-*.json):
5,000 seeded messages (14.5 MB of maildir): first backup 4.7 s, unchanged
backup 3.3 s, restore 3.2 s (4.3 MiB/s, 1,548 messages/s), drill 2.2 s,
repository 0.20 of the raw maildir (the seeded messages are alike, so
deduplication flatters it); 400 messages: 1.6 s, 1.3 s, 1.2 s, 0.6 s, 0.38.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOOL = "/usr/local/sbin/hopthu-backup"
AUTHORIZED_KEYS = "/srv/borg/.ssh/authorized_keys"

#: Runs on a host: the installed tool as a module, its paths pointed at the
#: scratch directory. argv[1]: JSON {"scratch", "key", "config", "args",
#: "repository_dir"}; prints the tool's output, then a last line of JSON.
ON_HOST = r"""
import contextlib, importlib.machinery, importlib.util, io, json, sys, time
params = json.loads(sys.argv[1])
loader = importlib.machinery.SourceFileLoader("hopthu_backup_bench", params["tool"])
spec = importlib.util.spec_from_loader("hopthu_backup_bench", loader)
tool = importlib.util.module_from_spec(spec)
loader.exec_module(tool)
tool.STATE_DIR = params["scratch"] + "/state"
tool.SSH_KEY = params["key"]
if params.get("repository_dir"):
    tool.REPOSITORY_DIR = params["repository_dir"]
out = io.StringIO()
start = time.monotonic()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    code = tool.main(["hopthu-backup", "--config", params["config"], *params["args"]])
seconds = time.monotonic() - start
print(out.getvalue())
state = {}
try:
    state = json.load(open(tool.STATE_DIR + "/last.json"))
except OSError:
    pass
print(json.dumps({"code": code, "seconds": round(seconds, 3), "state": state}))
"""


def ssh(host: str, command: str, *, timeout: float = 3600, input: str | None = None) -> str:
    from hopthu.lab import ssh_run

    rc, out, err = ssh_run(host, command, timeout=timeout, input=input)
    if rc != 0:
        raise SystemExit(f"{host}: `{command[:120]}` failed ({rc}): {err.strip() or out[-500:]}")
    return out


def tool_on(host: str, params: dict[str, Any], *, user: str | None = None,
            timeout: float = 7200) -> dict[str, Any]:
    """The tool as a module on `host`; as `user` when given (the backup host's
    commands run as borg: the tool would otherwise switch to it by starting
    itself again, without the scratch paths)."""
    command = f"python3 -c {shlex.quote(ON_HOST)} {shlex.quote(json.dumps(params))}"
    if user:
        command = f"cd / && runuser -u {user} -- {command}"
    out = ssh(host, command, timeout=timeout)
    lines = out.strip().splitlines()
    result = json.loads(lines[-1])
    result["output"] = "\n".join(lines[:-1])
    if result["code"] != 0:
        raise SystemExit(f"{host}: hopthu-backup {' '.join(params['args'])} failed:\n"
                         f"{result['output']}")
    return result


def du(host: str, path: str) -> int:
    return int(ssh(host, f"du -sb --exclude='.hopthu-*' {shlex.quote(path)} | cut -f1").split()[0])


def seed(host: str, run: str, count: int) -> str:
    """`count` generated messages in a folder of the unit mailbox vanphong@ (doveadm save)."""
    folder = f"Benchmark {run}"
    program = (
        "import subprocess, sys\n"
        f"user, folder, count = 'vanphong@moj.gov.vn', {folder!r}, {count}\n"
        "subprocess.run(['doveadm', 'mailbox', 'create', '-u', user, folder], check=True)\n"
        "for n in range(count):\n"
        "    body = ('Van ban so %d. ' % n) * (20 + n % 200)\n"
        "    msg = ('From: bench@moj.gov.vn\\r\\nTo: ' + user + '\\r\\nSubject: bench %d\\r\\n'"
        "           'Message-ID: <bench-%d@lab>\\r\\n\\r\\n' % (n, n) + body + '\\r\\n')\n"
        "    subprocess.run(['doveadm', 'save', '-u', user, '-m', folder], input=msg.encode(),"
        " check=True)\n"
    )
    ssh(host, f"python3 -c {shlex.quote(program)}", timeout=7200)
    return folder


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False, timeout=30).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="mail1", help="the lab store (default mail1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="add this many generated messages first (removed afterwards)")
    args = parser.parse_args()

    from hopthu.settings import load_inventory

    hosts = load_inventory("lab")
    store = hosts[args.host].values
    if not store.get("backup__client_enabled"):
        raise SystemExit(f"{args.host} does not back up (backup__client_enabled)")
    keeper = store["backup__server_host"]
    run = uuid.uuid4().hex[:8]
    bench = f".bench-{run}"
    scratch = f"/var/tmp/hopthu-bench-{run}"
    repository = f"/srv/borg/{bench}"
    figures: dict[str, Any] = {}
    folder = None
    saved_keys = ssh(keeper, f"cat {AUTHORIZED_KEYS}")
    try:
        if args.seed:
            folder = seed(args.host, run, args.seed)
        # A scratch key on the store, a scratch repository and key line on the backup host.
        ssh(args.host, f"mkdir -m 0700 -p {scratch} && ssh-keygen -q -t ed25519 -N '' "
                       f"-C bench@{args.host} -f {scratch}/id_ed25519")
        key = ssh(args.host, f"cat {scratch}/id_ed25519.pub").strip()
        ssh(keeper, f"runuser -u borg -- env BORG_PASSCOMMAND='cat /etc/hopthu/backup/passphrase'"
                    f" BORG_BASE_DIR=/var/lib/hopthu/backup/borg borg init "
                    f"--encryption=repokey-blake2 {repository}")
        line = (f'restrict,command="borg serve --append-only --restrict-to-repository '
                f'{repository}" {key}')
        ssh(keeper, f"cat >> {AUTHORIZED_KEYS}", input=line + "\n")
        config = json.loads("".join(
            row for row in ssh(args.host, "cat /etc/hopthu/backup/backup.conf").splitlines(True)
            if not row.lstrip().startswith("#")))
        config["client"]["repository"] = config["client"]["repository"].rsplit("/srv/borg/", 1)[0] \
            + repository
        ssh(args.host, f"cat > {scratch}/backup.conf", input=json.dumps(config))
        params = {"tool": TOOL, "scratch": scratch, "key": f"{scratch}/id_ed25519",
                  "config": f"{scratch}/backup.conf"}

        figures["raw_maildir_bytes"] = du(args.host, "/var/vmail")
        first = tool_on(args.host, {**params, "args": ["create"]})
        figures["first_backup"] = {k: first["state"].get(k) for k in (
            "messages", "files", "bytes", "original_size", "deduplicated_size")}
        figures["first_backup"]["seconds"] = first["seconds"]
        print(f"first backup:     {first['seconds']:9.1f} s  "
              f"({first['state'].get('messages')} messages)", flush=True)
        unchanged = tool_on(args.host, {**params, "args": ["create"]})
        figures["unchanged_backup"] = {"seconds": unchanged["seconds"],
                                       "deduplicated_size": unchanged["state"].get(
                                           "deduplicated_size")}
        print(f"unchanged backup: {unchanged['seconds']:9.1f} s", flush=True)
        archive = unchanged["state"]["archive"]

        # Restore throughput: the whole archive through SSH, as restore --all extracts it.
        start = time.monotonic()
        ssh(args.host, f"mkdir -p {scratch}/extract && cd {scratch}/extract && "
                       f"BORG_PASSCOMMAND='cat /etc/hopthu/backup/passphrase' "
                       f"BORG_BASE_DIR={scratch}/state/borg "
                       f"BORG_RSH='ssh -i {scratch}/id_ed25519 -o IdentitiesOnly=yes "
                       f"-o UserKnownHostsFile=/etc/hopthu/backup/known_hosts "
                       f"-o StrictHostKeyChecking=yes -o BatchMode=yes' "
                       f"borg extract {shlex.quote(config['client']['repository'] + '::' + archive)}",
            timeout=7200)
        seconds = time.monotonic() - start
        size = figures["first_backup"]["bytes"] or 0
        figures["restore"] = {
            "seconds": round(seconds, 3),
            "mib_per_second": round(size / 1048576 / seconds, 2) if seconds else None,
            "messages_per_second": round((figures["first_backup"]["messages"] or 0) / seconds, 1)
            if seconds else None,
        }
        print(f"restore (extract): {seconds:8.1f} s  "
              f"{figures['restore']['mib_per_second']} MiB/s", flush=True)

        # The backup host's drill of the same archive (local extraction + manifest).
        ssh(keeper, f"mkdir -p {scratch} && chown borg:borg {scratch}")
        keeper_config = {"host": keeper, "client": None,
                         "server": {"clients": [bench], "keep": {"daily": 1}}}
        ssh(keeper, f"cat > {scratch}/backup.conf && chown borg:borg {scratch}/backup.conf",
            input=json.dumps(keeper_config))
        drill = tool_on(keeper, {"tool": TOOL, "scratch": scratch, "key": "",
                                 "config": f"{scratch}/backup.conf",
                                 "args": ["drill", bench, "--archive", archive]},
                        user="borg")
        figures["drill_seconds"] = drill["seconds"]
        print(f"drill:            {drill['seconds']:9.1f} s", flush=True)

        figures["repository_bytes"] = du(keeper, repository)
        figures["repository_over_raw"] = round(
            figures["repository_bytes"] / figures["raw_maildir_bytes"], 3) \
            if figures["raw_maildir_bytes"] else None
        print(f"repository {figures['repository_bytes']} bytes for "
              f"{figures['raw_maildir_bytes']} bytes of maildir "
              f"(ratio {figures['repository_over_raw']})", flush=True)
    finally:
        ssh(keeper, f"cat > {AUTHORIZED_KEYS}", input=saved_keys)
        ssh(keeper, f"rm -rf {repository} /srv/borg/.drill/{bench} {scratch}")
        ssh(args.host, f"rm -rf {scratch}")
        if folder:
            ssh(args.host, f"doveadm mailbox delete -u vanphong@moj.gov.vn -s "
                           f"{shlex.quote(folder)}")

    now = datetime.now(UTC)
    record = {"benchmark": "backup", "when": now.isoformat(timespec="seconds"),
              "commit": _commit(), "host": args.host, "keeper": keeper,
              "seeded": args.seed, "figures": figures}
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"backup-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
