"""The accounts registry, inventories/<env>/accounts.yml, loaded and checked.

The registry is the ministry's list of mailboxes (DESIGN.md §4; Decree Art.
4, 6, 12, 13). A request to create, change or remove a mailbox is a commit to
this file, and the deploy applies it. So the file is checked here, before any
host is touched, and every problem is reported at once, naming the file, the
line, the entry and what to do (ART4-FORMAT, ART4-ONE-PERSONAL, ART9-UNICODE).

The form of an entry::

    - address: anvn@moj.gov.vn          # account@domain, lower-case ASCII
      kind: personal                    # personal | unit | alias
      staff_id: BTP-00017               # personal only: the person (Art. 4)
      unit: Cục Công nghệ thông tin     # the unit (Art. 12), Unicode NFC
      display_name: Nguyễn Văn An       # Unicode NFC, never TCVN3/VNI (Art. 9)
      quota: 2 GiB                      # bytes, or N KiB|MiB|GiB|TiB (not aliases)
      state: active                     # active | disabled | archived
      previous: [an@moj.gov.vn]         # former addresses: they stay as aliases
      # unit mailboxes: the head of the unit and the people it authorises (Art. 13)
      owner: anvn@moj.gov.vn
      delegates: [binhtt@moj.gov.vn]
      # aliases: where the mail goes
      targets: [anvn@moj.gov.vn]
      # archived mailboxes: forward their mail here instead of refusing it
      forward_to: vanphong@moj.gov.vn

`normalize()` gives the host tool (hopthu-userdb) one flat, validated form.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hopthu.accounts.legacy import detect_legacy, legacy_message

REGISTRY_FILE = "accounts.yml"
#: libyaml's safe loader when PyYAML has it (a 20,000-entry registry parses in
#: a second instead of a minute), else the pure-Python one; the same result.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KINDS = ("personal", "unit", "alias")
STATES = ("active", "disabled", "archived")
KEYS = {
    "address", "kind", "staff_id", "unit", "display_name", "quota", "state", "previous",
    "owner", "delegates", "targets", "forward_to",
}
#: keys only one kind may carry
ONLY = {"staff_id": ("personal",), "owner": ("unit",), "delegates": ("unit",),
        "targets": ("alias",), "quota": ("personal", "unit")}

LOCAL_PART = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
STAFF_ID = re.compile(r"^[A-Z0-9](?:[A-Z0-9-]{1,30}[A-Z0-9])$")
QUOTA = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|TiB)?\s*$")
UNITS = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

ADDRESS_FORM = "account@domain in lower-case ASCII letters, digits, '.', '-' or '_' (Art. 4)"


@dataclass(frozen=True)
class RegistryIssue:
    """One problem of the registry: where, which entry, what, and what to do."""

    file: str
    line: int | None
    entry: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.entry}\n    {self.message}"


class RegistryError(ValueError):
    """A registry that must not reach a host; `issues` lists every problem."""

    def __init__(self, issues: list[RegistryIssue], file: str):
        self.issues = issues
        self.file = file
        count = len(issues)
        body = "\n\n".join(str(i) for i in issues)
        super().__init__(
            f"the accounts registry {file} is invalid: {count} "
            f"{'problem' if count == 1 else 'problems'}; nothing was applied\n\n{body}"
        )


def registry_path(inventory_dir: str | Path, name: str = REGISTRY_FILE) -> Path:
    return Path(inventory_dir) / name


def registry_commit(inventory_dir: str | Path) -> str:
    """The git commit of the registry, for the audit log: HEAD, with "+changes"
    when accounts.yml differs from it (an uncommitted apply is still recorded)."""
    directory = str(inventory_dir)
    head = subprocess.run(["git", "-C", directory, "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "(not in git)"
    dirty = subprocess.run(["git", "-C", directory, "status", "--porcelain", "--", REGISTRY_FILE],
                           capture_output=True, text=True, check=False)
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def operator() -> str:
    """Who applies the registry, for the audit log: the person behind sudo,
    else the login name of the controller."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _lines(text: str) -> list[int | None]:
    """The 1-based line of each item of the top-level `accounts:` list."""
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return []
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "accounts" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def quota_bytes(value: Any) -> int:
    """A quota as bytes: an integer, or "N KiB|MiB|GiB|TiB" (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a quota is not negative")
        return value
    match = QUOTA.match(str(value))
    if not match:
        raise ValueError("a quota is bytes or 'N KiB|MiB|GiB|TiB', e.g. '2 GiB'")
    return int(match.group(1)) * UNITS[match.group(2)]


def check_text(value: Any, what: str) -> str | None:
    """What is wrong with a Vietnamese text field, or None (Art. 9)."""
    if not isinstance(value, str) or not value.strip():
        return f"{what} is missing or empty: give it in Vietnamese, in Unicode"
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        return f"{what} {value!r} contains control characters: retype it"
    match = detect_legacy(value)
    if match is not None:
        return f"{what} {legacy_message(value, match)}"
    if unicodedata.normalize("NFC", value) != value:
        fixed = unicodedata.normalize("NFC", value)
        return (f"{what} {value!r} is not in Unicode NFC (decomposed accents, as some "
                f"Mac and Windows tools paste them): write {fixed!r} (Art. 9, TCVN 6909:2001)")
    if value != value.strip() or "  " in value:
        return f"{what} {value!r} has stray spaces: write {' '.join(value.split())!r}"
    return None


def address_problem(value: Any, domains: set[str] | None) -> str | None:
    if not isinstance(value, str):
        return f"the address {value!r} is not text: write {ADDRESS_FORM}"
    local, at, domain = value.rpartition("@")
    if not at or not LOCAL_PART.match(local) or not DOMAIN.match(domain):
        hint = ""
        lower = value.lower().rpartition("@")
        if value != value.lower() and LOCAL_PART.match(lower[0]) and DOMAIN.match(lower[2]):
            hint = f" (write {value.lower()!r})"
        elif any(ord(c) > 127 for c in value):
            hint = " (no accents in an address: see `hopthu accounts suggest`)"
        return f"the address {value!r} is not {ADDRESS_FORM}{hint}"
    if domains is not None and domain not in domains:
        return (f"the address {value!r} is not in a mail domain of this system "
                f"({', '.join(sorted(domains))}): fix the domain or add it to userdb__domains")
    return None


def load(inventory_dir: str | Path, *, domains: set[str] | None = None,
         shown: str | None = None, name: str = REGISTRY_FILE) -> list[dict[str, Any]]:
    """The registry of an inventory, validated and normalized; [] when it has none.

    Raises RegistryError listing every problem. `shown` is the file name used
    in messages (default: the path as given).
    """
    path = registry_path(inventory_dir, name)
    if not path.is_file():
        return []
    label = shown or str(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError([RegistryIssue(
            label, None, "the file",
            f"is not UTF-8 (byte {exc.start}): save it as UTF-8, Vietnamese in Unicode (Art. 9)",
        )], label) from None
    try:
        data = yaml.load(text, Loader=_LOADER)  # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RegistryError([RegistryIssue(
            label, mark.line + 1 if mark else None, "the file", f"is not valid YAML: {exc}",
        )], label) from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("accounts"), list) \
            or set(data) - {"accounts"}:
        raise RegistryError([RegistryIssue(
            label, None, "the file",
            "must be a mapping with one key, `accounts:`, a list of entries "
            "(see hopthu/accounts/registry.py for the form)",
        )], label)
    # Line numbers are only needed for messages: a second parse, only then.
    return validate(data["accounts"], file=label, lines=lambda: _lines(text), domains=domains)


def validate(entries: list[Any], *, file: str = REGISTRY_FILE,
             lines: Callable[[], list[int | None]] | None = None,
             domains: set[str] | None = None) -> list[dict[str, Any]]:
    """Check every entry and the rules between entries; return the normalized list.

    `lines` gives the line of each entry, asked only when there is a problem.
    """
    known: list[list[int | None]] = []
    issues: list[RegistryIssue] = []
    out: list[dict[str, Any]] = []
    #: addresses of entries with problems of their own: not blamed again on
    #: the entries that name them
    invalid: set[str] = set()

    def where(index: int) -> int | None:
        if not known:
            known.append(lines() if lines else [])
        return known[0][index] if index < len(known[0]) else None

    def label(index: int, entry: Any) -> str:
        name = entry.get("address") if isinstance(entry, dict) else None
        return f"accounts[{index}]" + (f" ({name})" if isinstance(name, str) else "")

    def problem(index: int, entry: Any, message: str) -> None:
        issues.append(RegistryIssue(file, where(index), label(index, entry), message))

    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problem(index, entry, "an entry is a mapping with at least address, kind, unit "
                                  "and display_name")
            continue
        before = len(issues)
        unknown = sorted(set(entry) - KEYS)
        for key in unknown:
            near = [k for k in KEYS if _close(key, k)]
            problem(index, entry, f"unknown key {key!r}"
                    + (f": did you mean {near[0]!r}?" if near else f"; allowed: {', '.join(sorted(KEYS))}"))
        kind = entry.get("kind")
        if kind not in KINDS:
            problem(index, entry, f"kind {kind!r} is not one of {', '.join(KINDS)} (Art. 4)")
            if isinstance(entry.get("address"), str):
                invalid.add(entry["address"])
            continue
        message = address_problem(entry.get("address"), domains)
        if message:
            problem(index, entry, message)
        for key, kinds in ONLY.items():
            if key in entry and kind not in kinds:
                problem(index, entry, f"{key!r} belongs only to a {' or '.join(kinds)} entry, "
                                      f"not a {kind} one: remove it")
        state = entry.get("state", "active")
        if state not in STATES:
            problem(index, entry, f"state {state!r} is not one of {', '.join(STATES)}")
        for key in ("unit", "display_name"):
            message = check_text(entry.get(key), key)
            if message:
                problem(index, entry, message)
        staff_id = entry.get("staff_id")
        if kind == "personal" and (not isinstance(staff_id, str)
                                   or not STAFF_ID.match(staff_id)):
            problem(index, entry, f"staff_id {staff_id!r} is missing or malformed: a personal "
                                  f"mailbox names its person (Art. 4), 3-32 upper-case "
                                  f"letters, digits or '-', e.g. BTP-00017")
        quota = None
        if kind != "alias":
            try:
                quota = quota_bytes(entry.get("quota", "1 GiB"))
            except ValueError as exc:
                problem(index, entry, f"quota {entry.get('quota')!r}: {exc}")
        lists: dict[str, list[str]] = {}
        for key in ("previous", "delegates", "targets"):
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problem(index, entry, f"{key} is a list of addresses")
                value = []
            for item in value:
                message = address_problem(item, domains if key != "targets" else None)
                if message:
                    problem(index, entry, f"in {key}: {message}")
            if len(set(value)) != len(value):
                problem(index, entry, f"{key} names an address twice")
            lists[key] = value
        if kind == "unit" and not entry.get("owner"):
            problem(index, entry, "a unit mailbox names its owner, the head of the unit "
                                  "(Art. 13): add `owner: <personal address>`")
        if kind == "alias" and not lists["targets"]:
            problem(index, entry, "an alias needs `targets:`, the addresses its mail goes to")
        for key in ("owner", "forward_to"):
            if key in entry:
                message = address_problem(entry[key], None)
                if message:
                    problem(index, entry, f"{key}: {message}")
        if "forward_to" in entry and state != "archived":
            problem(index, entry, "forward_to applies only to an archived mailbox: remove it, "
                                  "or set state: archived")
        if len(issues) > before:
            if isinstance(entry.get("address"), str):
                invalid.add(entry["address"])
            continue
        out.append({
            "address": entry["address"],
            "kind": kind,
            "staff_id": staff_id if kind == "personal" else None,
            "unit": entry["unit"],
            "display_name": entry["display_name"],
            "quota": quota if quota is not None else 0,
            "state": state,
            "previous": lists["previous"],
            "owner": entry.get("owner"),
            "delegates": lists["delegates"],
            "targets": lists["targets"],
            "forward_to": entry.get("forward_to"),
            "_index": index,
        })

    _cross_checks(out, issues, file, where, invalid)
    if issues:
        raise RegistryError(sorted(issues, key=lambda i: (i.line or 0, i.entry)), file)
    for item in out:
        del item["_index"]
    return out


def _close(a: str, b: str) -> bool:
    """Whether `a` is one edit (or one swap) away from `b`: a likely misspelling."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        return len(diff) == 1 or (len(diff) == 2 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _cross_checks(entries: list[dict[str, Any]], issues: list[RegistryIssue], file: str,
                  where: Any, invalid: set[str]) -> None:
    """The rules between entries: one address each, one personal mailbox per person,
    owners and delegates are active personal mailboxes, targets and forwards exist."""

    def problem(entry: dict[str, Any], message: str) -> None:
        index = entry["_index"]
        issues.append(RegistryIssue(file, where(index), f"accounts[{index}] ({entry['address']})",
                                    message))

    claimed: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for address in (entry["address"], *entry["previous"]):
            first = claimed.get(address)
            if first is not None:
                problem(entry, f"the address {address} is already taken by "
                               f"accounts[{first['_index']}] ({first['address']}): an address, "
                               f"alias or former address belongs to one entry only")
            else:
                claimed[address] = entry
    personal: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["kind"] != "personal" or entry["state"] == "archived":
            continue
        first = personal.get(entry["staff_id"])
        if first is not None:
            problem(entry, f"staff_id {entry['staff_id']} already has a personal mailbox, "
                           f"accounts[{first['_index']}] ({first['address']}): a person gets "
                           f"exactly one (Art. 4); make this a unit mailbox, or archive one")
        else:
            personal[entry["staff_id"]] = entry
    by_address = {e["address"]: e for e in entries}
    for entry in entries:
        if entry["kind"] != "unit":
            continue
        for role, address in [("owner", entry["owner"]),
                              *(("delegate", d) for d in entry["delegates"])]:
            other = by_address.get(address)
            if address in invalid:
                continue
            if other is None:
                problem(entry, f"the {role} {address} is not in the registry: a unit "
                               f"mailbox's {role} is an active personal mailbox (Art. 13)")
            elif other["kind"] != "personal" or other["state"] != "active":
                problem(entry, f"the {role} {address} is a {other['state']} {other['kind']} "
                               f"entry: a unit mailbox's {role} is an active personal "
                               f"mailbox (Art. 13)")
        if entry["owner"] in entry["delegates"]:
            problem(entry, f"the owner {entry['owner']} is also listed as a delegate: the "
                           f"owner has access already; remove it from delegates")
    local_domains = {e["address"].rpartition("@")[2] for e in entries}
    for entry in entries:
        local = [t for t in entry["targets"] if t.rpartition("@")[2] in local_domains]
        for target in local:
            if target in invalid:
                continue
            other = by_address.get(target)
            if other is None or other["kind"] == "alias" or other["state"] == "archived":
                problem(entry, f"the target {target} is not an active or disabled mailbox "
                               f"of the registry: mail to this alias would bounce")
        if entry["forward_to"]:
            other = by_address.get(entry["forward_to"])
            if other is not None and other["state"] != "active":
                problem(entry, f"forward_to {entry['forward_to']} is not active: mail to "
                               f"this archived mailbox would bounce")


def set_owner(inventory_dir: str | Path, unit: str, new_owner: str) -> str:
    """Rewrite the `owner:` of the unit mailbox `unit` in accounts.yml to
    `new_owner`, in place: only that value changes, every comment and line
    stays. Returns the former owner. The result is checked like any registry
    before it is written (a new owner must be an active personal mailbox);
    on a problem the file is left as it was and RegistryError says why."""
    path = registry_path(inventory_dir)
    text = path.read_text(encoding="utf-8")
    node = yaml.compose(text, Loader=_LOADER)
    target = None
    for key, value in node.value if isinstance(node, yaml.MappingNode) else []:
        if key.value != "accounts" or not isinstance(value, yaml.SequenceNode):
            continue
        for item in value.value:
            fields = {k.value: v for k, v in item.value} if isinstance(item, yaml.MappingNode) \
                else {}
            if getattr(fields.get("address"), "value", None) == unit:
                target = fields
    if target is None or getattr(target.get("kind"), "value", None) != "unit":
        raise RegistryError([RegistryIssue(str(path), None, unit,
                                           f"{unit} is not a unit mailbox of the registry")],
                            str(path))
    owner = target.get("owner")
    if not isinstance(owner, yaml.ScalarNode):
        raise RegistryError([RegistryIssue(str(path), None, unit,
                                           f"{unit} has no owner: value to replace")], str(path))
    start, end = owner.start_mark.index, owner.end_mark.index
    updated = text[:start] + new_owner + text[end:]
    data = yaml.load(updated, Loader=_LOADER)
    validate(data["accounts"], file=str(path), lines=lambda: _lines(updated))
    path.write_text(updated, encoding="utf-8")
    return owner.value
