"""`hopthu backup`: run a backup, list, drill and restore, from the controller.

    hopthu backup now     [--inventory ENV] [--host STORE ...]
    hopthu backup list    [--inventory ENV] [--host STORE ...]
    hopthu backup drill   [--inventory ENV] [--host STORE ...] [--archive NAME] [--keep]
    hopthu backup drill   --host STORE --verify DIR      # a kept extraction, again
    hopthu backup restore --host STORE --mailbox ADDRESS [--archive NAME]
    hopthu backup restore --host STORE --all --yes [--archive NAME]

Each runs the hosts' own /usr/local/sbin/hopthu-backup over SSH, as Ansible
reaches them (the inventory's ansible_* settings; sudo where the inventory
becomes root): `now`, `list` and `restore` on the store, `drill` on the
backup host that keeps the store's repository, where the archive is
extracted to a scratch place and every message is checked against the
manifest taken at backup time. What each does, and the runbooks, are in
roles/backup/README.md.

Restore never replaces newer mail: a message the mailbox already has, under
any flags, is kept as it is; only what is missing comes back. `--all`
(after a store was rebuilt) also stops Postfix and Dovecot, replaces the
user database and the DKIM keys (keeping the current ones beside them) and
merges the accounts log, and needs --yes.

Exit status: 0; 1 when a host's run failed (its reason is printed); 2 when
the settings or the arguments are wrong (nothing ran).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from hopthu import ROOT

TOOL = "/usr/local/sbin/hopthu-backup"
INVALID = 2


@dataclass(frozen=True)
class Store:
    """A store host and the backup host that keeps its repository."""

    name: str
    settings: Any
    keeper: str
    keeper_settings: Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    texts = {
        "now": "back up the stores now (what their timers do every night)",
        "list": "list the archives of each store's repository",
        "drill": "on the backup host: extract the latest archive, verify every message",
        "restore": "put a mailbox, or a whole store, back from an archive",
    }
    for name, text in texts.items():
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("--inventory", "-i", default="lab", help="environment name or hosts.yml")
        sub.add_argument("--host", action="append", default=[], metavar="STORE",
                         help="only this store host (repeatable); default: every store"
                         if name != "restore" else "the store host to restore")
        if name in ("drill", "restore"):
            sub.add_argument("--archive", help="an archive name (default: the latest)")
        if name == "drill":
            sub.add_argument("--keep", action="store_true",
                             help="keep the extracted archive on the backup host")
            sub.add_argument("--verify", metavar="DIR",
                             help="check an extraction kept earlier (--keep) again")
        if name == "restore":
            what = sub.add_mutually_exclusive_group(required=True)
            what.add_argument("--mailbox", metavar="ADDRESS", help="one mailbox")
            what.add_argument("--all", action="store_true", dest="everything",
                              help="every mailbox, the user database, the DKIM keys")
            sub.add_argument("--yes", action="store_true",
                             help="with --all: stop the mail services and restore")


def stores(hosts: dict[str, Any]) -> dict[str, Store]:
    """Every store host of the inventory that backs itself up, with its backup host."""
    keepers = {name: s for name, s in hosts.items() if s.values.get("backup__server_enabled")}
    found: dict[str, Store] = {}
    for name, settings in hosts.items():
        if not settings.values.get("backup__client_enabled"):
            continue
        own = settings.values.get("backup__host_name", name)
        keeper = next((k for k, s in keepers.items()
                       if own in (s.values.get("backup__clients") or [])), None)
        if keeper is None:
            continue
        found[name] = Store(name, settings, keeper, keepers[keeper])
    return found


def ssh_argv(settings: Any) -> list[str]:
    """ssh to a host as Ansible would (hopthu accounts does the same)."""
    from hopthu.accounts.command import ssh_argv as accounts_ssh_argv

    return accounts_ssh_argv(settings)


def remote(settings: Any, argv: list[str]) -> str:
    """The command line for the host: through sudo where the inventory becomes root."""
    values = settings.values
    command = shlex.join(argv)
    if values.get("ansible_become") and str(values.get("ansible_user", "root")) != "root":
        command = f"sudo -n {command}"
    return command


def run_on(name: str, settings: Any, argv: list[str], *, timeout: float | None = None) -> int:
    """Run the tool on a host; print what it says, each line prefixed with the host."""
    check = (f"test -x {TOOL} || {{ echo '{TOOL} is not installed: deploy the backup role "
             f"to {name} first' >&2; exit 3; }}; ")
    try:
        result = subprocess.run([*ssh_argv(settings), check + remote(settings, argv)],
                                capture_output=True, text=True, timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"{name}: no answer within {timeout} s", file=sys.stderr)
        return 1
    for line in result.stdout.splitlines():
        print(f"{name}: {line}")
    for line in result.stderr.splitlines():
        print(f"{name}: {line}", file=sys.stderr)
    if result.returncode == 255:
        print(f"{name}: cannot reach the host over SSH (see above)", file=sys.stderr)
    return result.returncode


def run(args: argparse.Namespace) -> int:
    from hopthu.settings import SettingsError, load_inventory

    try:
        hosts = load_inventory(args.inventory, root=ROOT)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        print("hopthu backup: nothing ran", file=sys.stderr)
        return INVALID
    known = stores(hosts)
    if not known:
        print("hopthu backup: no store host of this inventory backs up to a backup host "
              "(backup__client_enabled, backup__clients)", file=sys.stderr)
        return INVALID
    unknown = sorted(set(args.host) - set(known))
    if unknown:
        print(f"hopthu backup: --host {', '.join(unknown)}: not a store host that backs up "
              f"(the stores: {', '.join(known)})", file=sys.stderr)
        return INVALID
    chosen = [known[h] for h in (args.host or known)]
    if args.action == "restore":
        if len(chosen) != 1 or not args.host:
            print("hopthu backup restore: name the one store to restore with --host",
                  file=sys.stderr)
            return INVALID
        return _restore(chosen[0], args)
    if args.action == "drill" and args.verify and len(chosen) != 1:
        print("hopthu backup drill --verify: name the store with --host", file=sys.stderr)
        return INVALID
    status = 0
    for store in chosen:
        if args.action == "now":
            code = run_on(store.name, store.settings, [TOOL, "create"])
        elif args.action == "list":
            code = run_on(store.name, store.settings, [TOOL, "list"])
        elif args.verify:
            code = run_on(store.keeper, store.keeper_settings, [TOOL, "verify", args.verify])
        else:
            argv = [TOOL, "drill", store.settings.values.get("backup__host_name", store.name)]
            if args.archive:
                argv += ["--archive", args.archive]
            if args.keep:
                argv.append("--keep")
            code = run_on(store.keeper, store.keeper_settings, argv)
        if code != 0:
            print(f"hopthu backup {args.action}: {store.name} failed (exit {code})",
                  file=sys.stderr)
            status = 1
    return status


def _restore(store: Store, args: argparse.Namespace) -> int:
    argv = [TOOL, "restore"]
    argv += ["--mailbox", args.mailbox] if args.mailbox else ["--all"]
    if args.archive:
        argv += ["--archive", args.archive]
    if args.everything and args.yes:
        argv.append("--yes")
    code = run_on(store.name, store.settings, argv)
    if code != 0:
        print(f"hopthu backup restore: {store.name} failed (exit {code})", file=sys.stderr)
        return 1
    return 0
