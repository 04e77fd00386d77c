"""Read an Ansible YAML inventory (``inventories/<env>/hosts.yml``).

Only the YAML inventory format is supported: it is the one hopthu's
inventories use, and reading it here (rather than through Ansible) keeps the
lab and the pyinfra side free of Ansible's import cost. The structure kept is
what variable precedence needs: each group's variables, parents and depth,
and each host's inline variables and groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hopthu import ROOT


class InventoryError(ValueError):
    """A malformed inventory: the message names the file and the place."""


@dataclass
class Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    #: ansible_group_priority (default 1): among groups of equal depth, a
    #: higher priority wins.
    priority: int = 1

    def depth(self, groups: dict[str, Group]) -> int:
        """Distance from `all`, as Ansible counts it (all = 0)."""
        if not self.parents:
            return 0
        return 1 + max(groups[p].depth(groups) for p in self.parents)


@dataclass
class Host:
    name: str
    #: Variables set on the host inside hosts.yml (the last occurrence wins).
    vars: dict[str, Any] = field(default_factory=dict)
    #: Groups the host is directly in, in the order the inventory names them.
    groups: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))


@dataclass
class Inventory:
    path: Path
    groups: dict[str, Group]
    hosts: dict[str, Host]

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.directory.name

    def host_groups(self, host: str) -> list[str]:
        """Every group of `host` except `all`, ancestors included, sorted by name.

        This is Ansible's `group_names`.
        """
        seen: set[str] = set()
        todo = list(self.hosts[host].groups)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(self.groups[name].parents)
        seen.discard("all")
        return sorted(seen)

    def groups_by_precedence(self, host: str) -> list[str]:
        """The host's groups, `all` first, in the order Ansible applies their vars.

        Lower depth first; equal depth by priority, then by name. Later wins.
        """
        names = ["all", *self.host_groups(host)]
        return sorted(
            names,
            key=lambda n: (self.groups[n].depth(self.groups), self.groups[n].priority, n),
        )

    def hosts_in(self, group: str) -> list[str]:
        """Every host of `group` or of its descendants, in inventory order."""
        if group == "all":
            return list(self.hosts)
        return [h for h in self.hosts if group in self.host_groups(h)]


def resolve(name_or_path: str | Path) -> Path:
    """Find an inventory's hosts.yml from an environment name or a path."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate.resolve()
    if candidate.is_dir() and (candidate / "hosts.yml").is_file():
        return (candidate / "hosts.yml").resolve()
    named = ROOT / "inventories" / str(name_or_path) / "hosts.yml"
    if named.is_file():
        return named
    known = sorted(p.name for p in (ROOT / "inventories").iterdir() if (p / "hosts.yml").is_file())
    raise InventoryError(
        f"inventory {name_or_path!r} not found: give one of {', '.join(known)} "
        f"or a path to a hosts.yml"
    )


def load_selecting(name_or_path: str | Path, selected: list[str]) -> Inventory:
    """Load an inventory and check that every host a command's --host names is in it."""
    inv = load(name_or_path)
    unknown = sorted(set(selected) - set(inv.hosts))
    if unknown:
        raise InventoryError(
            f"--host {', '.join(unknown)}: not in {inv.path}; its hosts are {', '.join(inv.hosts)}"
        )
    return inv


def load(name_or_path: str | Path) -> Inventory:
    path = resolve(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or "all" not in data:
        raise InventoryError(f"{path}: the top level must be a mapping with the group 'all'")
    extra = sorted(set(data) - {"all"})
    if extra:
        raise InventoryError(
            f"{path}: top-level groups {extra} must be nested under 'all: children:'"
        )

    groups: dict[str, Group] = {}
    hosts: dict[str, Host] = {}

    def walk(name: str, body: Any, parent: str | None, where: str) -> None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise InventoryError(f"{path}: {where}: a group must be a mapping, got {body!r}")
        unknown = sorted(set(body) - {"hosts", "children", "vars"})
        if unknown:
            raise InventoryError(
                f"{path}: {where}: unknown keys {unknown}; a group has only hosts, children, vars"
            )
        group = groups.setdefault(name, Group(name))
        if parent and parent not in group.parents:
            group.parents.append(parent)
            groups[parent].children.append(name)
        group_vars = body.get("vars") or {}
        if not isinstance(group_vars, dict):
            raise InventoryError(f"{path}: {where}.vars: must be a mapping")
        group.vars.update(group_vars)
        group.priority = int(group.vars.get("ansible_group_priority", group.priority))
        host_map = body.get("hosts") or {}
        if not isinstance(host_map, dict):
            raise InventoryError(
                f"{path}: {where}.hosts: must be a mapping of host names (each ending in ':')"
            )
        for host_name, host_vars in host_map.items():
            if host_vars is not None and not isinstance(host_vars, dict):
                raise InventoryError(
                    f"{path}: {where}.hosts.{host_name}: host variables must be a mapping"
                )
            host = hosts.setdefault(str(host_name), Host(str(host_name)))
            host.vars.update(host_vars or {})
            if name != "all" and name not in host.groups:
                host.groups.append(name)
            if host.name not in group.hosts:
                group.hosts.append(host.name)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise InventoryError(f"{path}: {where}.children: must be a mapping of groups")
        for child, child_body in children.items():
            walk(str(child), child_body, name, f"{where}.children.{child}")

    walk("all", data["all"], None, "all")
    for host in hosts.values():
        if not host.groups:
            host.groups.append("ungrouped")
            groups.setdefault("ungrouped", Group("ungrouped", parents=["all"]))
    return Inventory(path=path, groups=groups, hosts=hosts)
