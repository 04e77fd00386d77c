"""`hopthu accounts`: the registry, checked, planned and applied.

    hopthu accounts check --inventory production      # the registry only, no host
    hopthu accounts plan  --inventory production      # what apply would change
    hopthu accounts apply --inventory production      # change the user databases
    hopthu accounts reset-password ADDRESS --ticket REF --inventory production
    hopthu accounts handover UNIT --to NEW_OWNER --ticket REF --inventory production
    hopthu accounts suggest "Nguyễn Văn An" --inventory production

`plan` and `apply` do on every userdb host (mail_mx and mail_store) what the
"Apply the user database settings" step of both engines does: they render
/etc/hopthu/userdb/userdb.conf from the same template with the same
settings, and run the host's hopthu-userdb with it (`--check` for plan, with
the file in a scratch place; the real one is not touched). A deploy after an
apply therefore changes nothing, and an apply after a deploy neither. The
host must have been deployed once (the tool and the schema are the role's).

On a store host, apply then gives the unit mailboxes' owners and delegates
their IMAP rights (hopthu-unit-acl, as the deploy's dovecot role does) and
publishes the directory built from the same registry (/danh-ba/, as the
deploy does), so both change in the same run.

Every change is appended to /var/log/hopthu/accounts.log on the host with the
registry's commit and the operator. New initial passwords are written by the
host to /var/lib/hopthu/userdb/initial-passwords/ (0600, root); `apply`
copies each new file to secrets/<env>/initial-passwords/ on the controller
(0600, git-ignored) and removes it from the host, and never prints a
password.

Exit status: 0; 1 when a host fails; 2 when the settings or the registry are
invalid (nothing is applied anywhere).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from hopthu import ROOT

CONFIG = "/etc/hopthu/userdb/userdb.conf"
TOOL = "/usr/local/sbin/hopthu-userdb"
UNIT_ACL = "/usr/local/sbin/hopthu-unit-acl"
PASSWORDS_DIR = "/var/lib/hopthu/userdb/initial-passwords"
DIRECTORY = "/usr/local/share/hopthu/www/danh-ba"
INVALID = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("check", "check the registry and the settings; touch no host"),
                       ("plan", "show what apply would change on each host"),
                       ("apply", "apply the registry to every user database")):
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("--inventory", "-i", default="lab", help="environment name or hosts.yml")
        if name != "check":
            sub.add_argument("--limit", "-l", help="only these hosts (comma-separated)")
    reset = actions.add_parser("reset-password", help="the support desk's reset (Art. 14)")
    reset.add_argument("address")
    reset.add_argument("--ticket", required=True,
                       help="the request's reference (letter or mail to support@), logged")
    reset.add_argument("--inventory", "-i", default="lab")
    reset.add_argument("--limit", "-l", help="only these store hosts (comma-separated)")
    handover = actions.add_parser(
        "handover", help="give a unit mailbox to its new head (Art. 13): owner, password")
    handover.add_argument("unit", help="the unit mailbox's address")
    handover.add_argument("--to", required=True, dest="new_owner",
                          help="the new head's personal address (an active entry)")
    handover.add_argument("--ticket", required=True, help="the decision's reference, logged")
    handover.add_argument("--inventory", "-i", default="lab")
    handover.add_argument("--limit", "-l", help="only these hosts (comma-separated)")
    suggest = actions.add_parser("suggest", help="suggest an account name for a full name")
    suggest.add_argument("full_name")
    suggest.add_argument("--inventory", "-i", default="lab")


def run(args: argparse.Namespace) -> int:
    from hopthu.settings import SettingsError, load_inventory

    try:
        hosts = load_inventory(args.inventory, root=ROOT)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        print("hopthu accounts: nothing was applied", file=sys.stderr)
        return INVALID
    if args.action == "check":
        from hopthu.accounts.registry import load

        any_host = next(iter(hosts.values()))
        entries = load(any_host.context["inventory_dir"])
        print(f"registry OK: {len(entries)} entries "
              f"({_counts(entries)})" if entries else "no registry (accounts.yml) in this inventory")
        return 0
    if args.action == "suggest":
        return _suggest(args.full_name, hosts)
    targets = [name for name, s in hosts.items()
               if {"mail_mx", "mail_store"} & set(s.context["group_names"])]
    if args.limit:
        wanted = set(args.limit.split(","))
        unknown = wanted - set(targets)
        if unknown:
            print(f"hopthu accounts: --limit names {', '.join(sorted(unknown))}, not a userdb "
                  f"host of this inventory ({', '.join(targets)})", file=sys.stderr)
            return INVALID
        targets = [t for t in targets if t in wanted]
    if args.action == "handover":
        return _handover(args, hosts, targets)
    if args.action == "reset-password":
        stores = [h for h in targets if hosts[h].values.get("userdb__passwords_enabled")]
        if not stores:
            print("hopthu accounts: no host of this inventory keeps passwords", file=sys.stderr)
            return INVALID
        status = 0
        for name in stores:
            status |= _reset(name, hosts[name], args.address, args.ticket)
        return status
    status = 0
    for name in targets:
        status |= _apply(name, hosts[name], check=args.action == "plan")
    return status


def _handover(args: argparse.Namespace, hosts: dict[str, Any], targets: list[str]) -> int:
    """Art. 13: the unit mailbox, its password and all its content go to the new
    head. The registry's owner is rewritten (only that value), the registry is
    applied everywhere (the former owner loses send-as at once), and the unit
    mailbox gets a new must-change password for its new head; no message is
    touched. The change to accounts.yml is then to be committed."""
    from hopthu.accounts.registry import RegistryError, set_owner

    inventory_dir = next(iter(hosts.values())).context["inventory_dir"]
    try:
        former = set_owner(inventory_dir, args.unit, args.new_owner)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        print("hopthu accounts handover: nothing was changed", file=sys.stderr)
        return INVALID
    print(f"{args.unit}: owner {former} -> {args.new_owner} in {inventory_dir}/accounts.yml")
    status = 0
    for name in targets:
        status |= _apply(name, hosts[name], check=False)
    if status:
        return status
    for name in targets:
        if hosts[name].values.get("userdb__passwords_enabled"):
            status |= _reset(name, hosts[name], args.unit, args.ticket)
    if not status:
        print(f"handover done: commit {inventory_dir}/accounts.yml (ticket {args.ticket}), and "
              f"give the new password of {args.unit} to {args.new_owner}")
    return status


def _counts(entries: list[dict[str, Any]]) -> str:
    from collections import Counter

    kinds = Counter(e["kind"] for e in entries)
    states = Counter(e["state"] for e in entries)
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + "; " + \
        ", ".join(f"{n} {k}" for k, n in sorted(states.items()))


def _suggest(full_name: str, hosts: dict[str, Any]) -> int:
    from hopthu.accounts.naming import suggest_account
    from hopthu.accounts.registry import load

    any_host = next(iter(hosts.values()))
    taken = {a.rpartition("@")[0] for e in load(any_host.context["inventory_dir"])
             for a in (e["address"], *e["previous"])}
    try:
        print(suggest_account(full_name, taken))
    except ValueError as exc:
        print(f"hopthu accounts suggest: {exc}", file=sys.stderr)
        return INVALID
    return 0


def ssh_argv(settings: Any) -> list[str]:
    """ssh to a host as Ansible would, from the inventory's ansible_* settings."""
    values = settings.values
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
    if values.get("ansible_ssh_private_key_file"):
        argv += ["-i", str(values["ansible_ssh_private_key_file"])]
    argv += shlex.split(str(values.get("ansible_ssh_common_args") or ""))
    if values.get("ansible_user"):
        argv += ["-l", str(values["ansible_user"])]
    argv.append(str(values.get("ansible_host") or settings.context["inventory_hostname"]))
    return argv


def _ssh(settings: Any, command: str, *, input: str | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ssh_argv(settings), command], input=input, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _apply(name: str, settings: Any, *, check: bool) -> int:
    from hopthu.accounts.registry import operator, registry_commit
    from hopthu.render import render

    text = render("etc/hopthu/userdb/userdb.conf.j2", settings.template_vars())
    inventory_dir = settings.context["inventory_dir"]
    audit = (f"--commit {shlex.quote(registry_commit(inventory_dir))} "
             f"--operator {shlex.quote(operator())}")
    if check:
        # A scratch copy: the deployed configuration is not touched by a plan.
        command = (f"test -x {TOOL} || {{ echo 'hopthu-userdb is not installed: deploy this "
                   f"host first' >&2; exit 3; }}; f=$(mktemp /run/hopthu-userdb-plan.XXXXXX) "
                   f"&& cat > \"$f\" && {TOOL} apply \"$f\" --check {audit}; rc=$?; "
                   f"rm -f \"$f\"; exit $rc")
    else:
        # Replace the deployed file only when it differs (the engines would
        # write the same bytes), then apply.
        command = (f"test -x {TOOL} || {{ echo 'hopthu-userdb is not installed: deploy this "
                   f"host first' >&2; exit 3; }}; umask 077; f=$(mktemp {CONFIG}.XXXXXX) && "
                   f"cat > \"$f\" && {{ cmp -s \"$f\" {CONFIG} && rm -f \"$f\" || "
                   f"mv -f \"$f\" {CONFIG}; }} && {TOOL} apply {CONFIG} {audit}")
    result = _ssh(settings, command, input=text)
    for line in result.stdout.splitlines():
        print(f"{name}: {line}")
    for line in result.stderr.splitlines():
        print(f"{name}: {line}", file=sys.stderr)
    if result.returncode != 0:
        print(f"{name}: failed (exit {result.returncode}); nothing was committed on this host",
              file=sys.stderr)
        return 1
    if check:
        return 0
    status = _collect_passwords(name, settings)
    if "mail_store" in settings.context["group_names"]:
        if settings.values.get("dovecot__unit_sharing"):
            status |= _unit_rights(name, settings)
        status |= _publish_directory(name, settings)
    return status


def _unit_rights(name: str, settings: Any) -> int:
    """Who reads each unit mailbox, from the database just applied: the same
    program the deploy runs (roles/dovecot, "Give unit mailbox owners and
    delegates their rights"), in the same run (Art. 13)."""
    result = _ssh(settings, f"test -x {UNIT_ACL} || {{ echo '{UNIT_ACL} is not installed: "
                            f"deploy the dovecot role first' >&2; exit 3; }}; {UNIT_ACL}")
    for line in result.stdout.splitlines():
        print(f"{name}: {line}")
    if result.returncode != 0:
        print(f"{name}: the unit mailboxes' rights were not set: {result.stderr.strip()}",
              file=sys.stderr)
        return 1
    return 0


def _publish_directory(name: str, settings: Any) -> int:
    """The directory of the registry just applied, as the deploy publishes it
    (roles/portal, "Publish the e-mail directory"), in the same run (Art. 6)."""
    from hopthu.render import load_filters

    filters = load_filters()
    registry = settings.values.get("portal__registry_file")
    if not registry or not filters["accounts_registry_present"](registry):
        return 0
    changed = []
    for file in ("index.html", "directory.csv", "directory.vcf", "directory.ldif"):
        dest = f"{DIRECTORY}/{file}"
        result = _ssh(settings, f"test -d {DIRECTORY} || {{ echo 'no {DIRECTORY}: deploy the "
                                f"portal role first' >&2; exit 3; }}; f=$(mktemp {dest}.XXXXXX) "
                                f"&& cat > \"$f\" && chmod 0644 \"$f\" && if cmp -s \"$f\" {dest}; "
                                f"then rm -f \"$f\"; else mv -f \"$f\" {dest} && echo changed; fi",
                      input=filters["accounts_directory"](registry, file))
        if result.returncode != 0:
            print(f"{name}: the directory was not published: {result.stderr.strip()}",
                  file=sys.stderr)
            return 1
        if "changed" in result.stdout:
            changed.append(file)
    print(f"{name}: directory " + (f"published ({', '.join(changed)})" if changed
                                   else "unchanged"))
    return 0


def _reset(name: str, settings: Any, address: str, ticket: str) -> int:
    from hopthu.accounts.registry import operator
    audit = f"--operator {shlex.quote(operator())}"
    result = _ssh(settings, f"{TOOL} reset-password {CONFIG} {shlex.quote(address)} "
                            f"--ticket {shlex.quote(ticket)} {audit}")
    for line in result.stdout.splitlines():
        print(f"{name}: {line}")
    for line in result.stderr.splitlines():
        print(f"{name}: {line}", file=sys.stderr)
    if result.returncode != 0:
        return 1
    return _collect_passwords(name, settings)


def secrets_dir(settings: Any) -> Path:
    inventory = Path(settings.context["inventory_dir"]).name
    return ROOT / "secrets" / inventory / "initial-passwords"


def _collect_passwords(name: str, settings: Any) -> int:
    """Move the host's new initial-password files to the controller (0600,
    git-ignored secrets/); say where, never what."""
    listing = _ssh(settings, f"ls -1 {PASSWORDS_DIR} 2>/dev/null || true")
    files = [f for f in listing.stdout.split() if f.endswith(".txt")]
    if not files:
        return 0
    target = secrets_dir(settings)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    for file in files:
        result = _ssh(settings, f"cat {PASSWORDS_DIR}/{shlex.quote(file)}")
        if result.returncode != 0:
            print(f"{name}: could not read {PASSWORDS_DIR}/{file}; it stays on the host",
                  file=sys.stderr)
            return 1
        local = target / f"{name}-{file}"
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(result.stdout)
        _ssh(settings, f"rm -f {PASSWORDS_DIR}/{shlex.quote(file)}")
        count = sum(1 for line in result.stdout.splitlines() if line and not line.startswith("#"))
        print(f"{name}: {count} initial password(s) saved to {local} (0600); hand each to its "
              f"holder, then delete the file")
    return 0
