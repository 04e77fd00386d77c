"""Which roles site.yml applies to a host, in order, dependencies first.

Role defaults are the lowest layer of a host's variables, and only the roles
a play applies to the host contribute theirs. A play's `hosts:` is read the
way Ansible reads a pattern: names (groups, hosts, `all`, shell wildcards)
joined by `:` or `,`, then `&name` intersections, then `!name` exclusions.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hopthu.inventory import Inventory
from hopthu.settings.files import VarsFileError, _parse, find_vars_files


@dataclass(frozen=True)
class Play:
    #: which play it is: "play 2 (Build the base of every host)"
    where: str
    hosts: str
    roles: list[str]
    #: the play's `vars:` (Ansible ranks them above host_vars)
    vars: dict[str, Any] = field(default_factory=dict)


def read_plays(root: Path) -> list[Play] | None:
    """The plays of root/site.yml (following import_playbook), or None without site.yml."""
    site = root / "site.yml"
    if not site.is_file():
        return None
    return _read_playbook(site, root, depth=0)


def _read_playbook(path: Path, root: Path, depth: int) -> list[Play]:
    if depth > 10:
        raise VarsFileError(path, "import_playbook nests more than 10 levels (a loop?)")
    data, _ = _parse(path, path.read_text(encoding="utf-8"))
    if data is None:
        return []
    if not isinstance(data, list):
        raise VarsFileError(path, "a playbook must be a list of plays", 1)
    plays: list[Play] = []
    for number, item in enumerate(data, start=1):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"play {number}" + (f" ({name})" if name else "")
        if path.name != "site.yml":
            where += f" of {_relative(path, root)}"
        if not isinstance(item, dict):
            raise VarsFileError(path, f"{where} is not a mapping")
        imported = item.get("import_playbook", item.get("ansible.builtin.import_playbook"))
        if imported is not None:
            plays.extend(_read_playbook(path.parent / str(imported), root, depth + 1))
            continue
        hosts = item.get("hosts", "")
        if isinstance(hosts, list):
            hosts = ",".join(str(h) for h in hosts)
        roles = [_role_name(entry, path, where) for entry in item.get("roles") or []]
        play_vars = item.get("vars") or {}
        if not isinstance(play_vars, dict):
            raise VarsFileError(path, f"{where}: vars must be a mapping")
        plays.append(Play(where, str(hosts), roles, play_vars))
    return plays


def _role_name(entry: Any, path: Path, where: str) -> str:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        name = entry.get("role", entry.get("name"))
        if isinstance(name, str):
            return name
    raise VarsFileError(path, f"{where}: a role must be a name or a mapping with 'role:'")


def match_hosts(pattern: str, inventory: Inventory) -> list[str]:
    """The hosts of `inventory` a play's `hosts:` pattern selects."""
    if "{{" in pattern or "{%" in pattern:
        raise ValueError(f"the hosts pattern {pattern!r} is templated; hopthu cannot evaluate it")
    terms = [t.strip() for t in re.split(r"[:,]", pattern) if t.strip()]
    selected: list[str] = []
    for term in (t for t in terms if t[0] not in "&!"):
        selected.extend(h for h in _term(term, inventory) if h not in selected)
    for term in (t[1:] for t in terms if t[0] == "&"):
        keep = set(_term(term, inventory))
        selected = [h for h in selected if h in keep]
    for term in (t[1:] for t in terms if t[0] == "!"):
        drop = set(_term(term, inventory))
        selected = [h for h in selected if h not in drop]
    return selected


def _term(term: str, inventory: Inventory) -> list[str]:
    if term in ("all", "*"):
        return list(inventory.hosts)
    if term in inventory.groups:
        return inventory.hosts_in(term)
    if term in inventory.hosts:
        return [term]
    found: list[str] = []
    for group in inventory.groups:
        if fnmatch.fnmatchcase(group, term):
            found.extend(h for h in inventory.hosts_in(group) if h not in found)
    found.extend(h for h in inventory.hosts if fnmatch.fnmatchcase(h, term) and h not in found)
    return found


def role_chain(root: Path, role: str, where: str, seen: tuple[str, ...] = ()) -> list[str]:
    """`role` preceded by its dependencies (meta/main.yml), as Ansible orders their defaults."""
    role_dir = root / "roles" / role
    if not role_dir.is_dir():
        raise VarsFileError(root / "site.yml", f"{where} applies the role {role!r}, "
                            f"which has no directory roles/{role}/")
    if role in seen:
        raise VarsFileError(role_dir / "meta" / "main.yml",
                            f"role dependencies loop: {' -> '.join((*seen, role))}")
    chain: list[str] = []
    for meta in find_vars_files(role_dir / "meta", "main"):
        data, _ = _parse(meta, meta.read_text(encoding="utf-8"))
        deps = data.get("dependencies") if isinstance(data, dict) else None
        for dep in deps or []:
            name = _role_name(dep, meta, f"roles/{role}/meta dependencies")
            chain.extend(r for r in role_chain(root, name, where, (*seen, role)) if r not in chain)
    if role not in chain:
        chain.append(role)
    return chain


def roles_with_defaults(root: Path) -> list[str]:
    """Every role under root/roles/ that has defaults, by name."""
    roles_dir = root / "roles"
    if not roles_dir.is_dir():
        return []
    return sorted(
        p.name for p in roles_dir.iterdir()
        if p.is_dir() and find_vars_files(p / "defaults", "main")
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
