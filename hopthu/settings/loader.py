"""Load a host's settings with Ansible 2.19's precedence, resolve them, check them.

The layers, lowest first, as Ansible's VariableManager.get_vars merges them
(DEFAULT_VARIABLE_PRECEDENCE; the docs' "variable precedence" list):

 1. role defaults of the roles site.yml applies to the host, dependencies first
 2. inventory file (hosts.yml) vars of group `all`
 3. inventory file vars of the host's other groups
 4. inventory `group_vars/all`
 5. playbook (top-level) `group_vars/all`
 6. inventory `group_vars/<group>` for each of the host's groups
 7. playbook `group_vars/<group>` for each of the host's groups
 8. inventory file vars of the host
 9. inventory `host_vars/<host>`
10. playbook `host_vars/<host>`
11. play `vars:` of the plays that target the host
12. role `vars/main.yml` of the applied roles
13. extra vars (`ansible-playbook -e`; here the `extra_vars` argument)

Groups go by depth from `all`, then `ansible_group_priority`, then name.
Dicts replace each other whole (hash_behaviour=replace). Note 3 before 4:
Ansible applies the inventory file's group vars of every group before any
`group_vars/` file, not group by group.

The layering guard (group_vars/README.md): a value an environment sets (in
`inventories/<env>/`) must never be silently overridden by the playbook's
`group_vars/`/`host_vars/`, play vars or role vars; that is an error naming
both files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hopthu import ROOT
from hopthu import inventory as inventory_module
from hopthu.inventory import Inventory, InventoryError
from hopthu.schema import MISSING, REGISTRY, SettingsModel, validate
from hopthu.settings.errors import NOTHING, SettingsError, SettingsIssue
from hopthu.settings.files import VarsFileError, find_vars_files, read_vars_file
from hopthu.settings.plays import Play, match_hosts, read_plays, role_chain, roles_with_defaults
from hopthu.settings.templating import Resolver, environment

#: The names the loader provides for every host, as Ansible does. Files may
#: not set them (Ansible's magic variables override any such setting).
CONTEXT_NAMES = (
    "inventory_hostname",
    "inventory_hostname_short",
    "group_names",
    "groups",
    "inventory_dir",
    "playbook_dir",
)

# Layer kinds. An environment's own values come from INVENTORY layers.
ROLE_DEFAULTS = "role defaults"
INVENTORY = "inventory"
PLAYBOOK = "playbook"
PLAY_VARS = "play vars"
ROLE_VARS = "role vars"
EXTRA_VARS = "extra vars"


@dataclass(frozen=True)
class Origin:
    """Where a variable's winning value was set."""

    file: Path
    #: the precedence layer, e.g. "inventory group_vars/mail_mx"
    layer: str
    kind: str
    line: int | None = None
    #: the file as shown to people (relative to the project root if inside it)
    shown: str = ""

    def __str__(self) -> str:
        where = f"{self.shown}:{self.line}" if self.line else self.shown
        return f"{where} ({self.layer})"


@dataclass
class Settings:
    """The resolved and validated settings of one host."""

    host: str
    inventory: Inventory
    #: every variable set for the host, resolved, as plain Python data
    values: dict[str, Any]
    #: for each key of `vars`, where its winning value was set
    origins: dict[str, Origin]
    #: what Ansible provides for the host: inventory_hostname, group_names...
    context: dict[str, Any]
    #: the roles applied to the host, in order (their defaults are layer 1)
    roles: list[str]
    #: the validated model of the host's namespaces
    model: SettingsModel | None = field(default=None, repr=False)

    @property
    def vars(self) -> dict[str, Any]:
        """The same as `values`."""
        return self.values

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def template_vars(self) -> dict[str, Any]:
        """What a template engine gets: the variables plus the base context."""
        return {**self.values, **self.context}


@dataclass(frozen=True)
class _Layer:
    origin: Origin
    data: dict[str, Any]
    lines: dict[str, int]


def load_host(
    inventory: str | Path,
    host: str,
    *,
    root: str | Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> Settings:
    """The settings of `host` in `inventory` (an environment name, a directory or hosts.yml).

    `root` is the project tree (default: this checkout), with roles/,
    group_vars/ and site.yml. `extra_vars` rank above everything, as
    `ansible-playbook -e` does. Raises SettingsError listing every problem.
    """
    project = _Project(inventory, root, extra_vars)
    if host not in project.inventory.hosts:
        known = ", ".join(project.inventory.hosts)
        raise SettingsError(
            [SettingsIssue(project.shown(project.inventory.path), "", NOTHING,
                           f"has no host {host!r}", f"one of: {known}")],
            title=f"no host {host!r} in inventory {project.inventory.name}",
        )
    settings, issues = project.host(host)
    if issues:
        raise SettingsError(
            issues, title=f"settings of {host} (inventory {project.inventory.name}) are invalid",
            all_hosts=[host],
        )
    return settings


def load_inventory(
    inventory: str | Path,
    *,
    root: str | Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> dict[str, Settings]:
    """The settings of every host of `inventory`. Raises SettingsError listing all problems."""
    project = _Project(inventory, root, extra_vars)
    found: dict[str, Settings] = {}
    issues: list[SettingsIssue] = []
    for host in project.inventory.hosts:
        settings, host_issues = project.host(host)
        found[host] = settings
        issues.extend(host_issues)
    if not issues:
        issues.extend(project.registry_issues(found))
    if issues:
        raise SettingsError(
            issues, title=f"settings of inventory {project.inventory.name} are invalid",
            all_hosts=project.inventory.hosts,
        )
    return found


def inventory_path(inventory: str | Path, root: Path) -> Path:
    """The hosts.yml of an environment name, a directory or a file, under `root` for names."""
    for candidate in (Path(inventory), root / inventory, root / "inventories" / str(inventory)):
        if candidate.is_file():
            return candidate.resolve()
        if candidate.is_dir() and (candidate / "hosts.yml").is_file():
            return (candidate / "hosts.yml").resolve()
    inventories = root / "inventories"
    known = sorted(p.name for p in inventories.iterdir() if (p / "hosts.yml").is_file()) \
        if inventories.is_dir() else []
    raise SettingsError(
        [SettingsIssue("", "", NOTHING, f"inventory {str(inventory)!r} not found",
                       f"an environment ({', '.join(known) or 'none yet'}), an inventory "
                       f"directory, or a path to a hosts.yml")],
        title="no such inventory",
    )


class _Project:
    """One project tree and one inventory: what all hosts share."""

    def __init__(self, inventory: str | Path, root: str | Path | None,
                 extra_vars: Mapping[str, Any] | None = None):
        self.root = Path(root or ROOT).resolve()
        self.extra_vars = dict(extra_vars or {})
        path = inventory_path(inventory, self.root)
        try:
            self.inventory = inventory_module.load(path)
        except InventoryError as exc:
            raise SettingsError(
                [SettingsIssue(self.shown(path), "", NOTHING, str(exc).removeprefix(f"{path}: "))],
                title="the inventory cannot be read",
            ) from None
        self.issues: list[SettingsIssue] = []
        self.plays: list[Play] | None = None
        try:
            self.plays = read_plays(self.root)
        except VarsFileError as exc:
            self.issues.append(self._file_issue(exc))
            self.plays = []
        roles_dir = self.root / "roles"
        self.known_roles = sorted(p.name for p in roles_dir.iterdir() if p.is_dir()) \
            if roles_dir.is_dir() else []
        self.env = None
        try:
            self.env = environment(self.root)
        except VarsFileError as exc:
            self.issues.append(self._file_issue(exc))

    # --- Helpers -----------------------------------------------------------------------

    def registry_issues(self, hosts: dict[str, Settings]) -> list[SettingsIssue]:
        """The problems of the inventory's accounts registry (accounts.yml), if it
        has one: checked here so that a bad entry stops every engine before any
        host is touched, as a bad setting does (hopthu/accounts/registry.py)."""
        from hopthu.accounts.registry import RegistryError, load

        domains: set[str] = set()
        seeded: set[str] = set()
        for settings in hosts.values():
            domains.update(settings.values.get("userdb__domains") or ())
            for key in ("userdb__seed_accounts", "userdb__seed_aliases"):
                seeded.update(a["address"] for a in settings.values.get(key) or ())
        shown = self.shown(self.inventory.directory / "accounts.yml")
        try:
            entries = load(self.inventory.directory, domains=domains or None, shown=shown)
        except RegistryError as exc:
            return [SettingsIssue(i.file, i.entry, NOTHING, i.message, line=i.line)
                    for i in exc.issues]
        # The lab's seed (userdb__seed_*) and the registry must not both own an
        # address: the host tool would refuse it, after other roles had run.
        return [
            SettingsIssue(shown, f"accounts[{index}] ({entry['address']})", NOTHING,
                          f"{address} is also one of the lab's seed accounts or aliases "
                          f"(userdb__seed_accounts, userdb__seed_aliases)",
                          "an address in one place only: rename it here, or drop the seed")
            for index, entry in enumerate(entries)
            for address in (entry["address"], *entry["previous"]) if address in seeded
        ]

    def shown(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)

    def _file_issue(self, exc: VarsFileError, host: str | None = None) -> SettingsIssue:
        return SettingsIssue(self.shown(exc.path), exc.key, NOTHING, exc.message,
                             "", exc.line, (host,) if host else ())

    def _files(self, directory: Path, name: str, layer: str, kind: str,
               issues: list[SettingsIssue], host: str) -> Iterator[_Layer]:
        for path in find_vars_files(directory, name):
            try:
                loaded = read_vars_file(path)
            except VarsFileError as exc:
                issues.append(self._file_issue(exc, host))
                continue
            yield _Layer(Origin(path, layer, kind, shown=self.shown(path)),
                         loaded.data, loaded.lines)

    # --- One host -----------------------------------------------------------------------

    def roles_for(self, host: str, issues: list[SettingsIssue]) -> tuple[list[str], list[Play]]:
        if self.plays is None:
            return roles_with_defaults(self.root), []
        roles: list[str] = []
        plays: list[Play] = []
        for play in self.plays:
            try:
                targets = match_hosts(play.hosts, self.inventory)
            except ValueError as exc:
                issues.append(SettingsIssue("site.yml", "", NOTHING, f"{play.where}: {exc}",
                                            "a pattern of group and host names", None, (host,)))
                continue
            if host not in targets:
                continue
            plays.append(play)
            for role in play.roles:
                try:
                    chain = role_chain(self.root, role, play.where)
                except VarsFileError as exc:
                    issues.append(self._file_issue(exc, host))
                    continue
                roles.extend(r for r in chain if r not in roles)
        return roles, plays

    def layers(self, host: str, roles: list[str], plays: list[Play],
               issues: list[SettingsIssue]) -> list[_Layer]:
        inv = self.inventory
        inv_dir = inv.directory
        inv_file = inv.path
        shown_inv = self.shown(inv_file)
        groups = [g for g in inv.groups_by_precedence(host) if g != "all"]
        layers: list[_Layer] = []

        def files(directory: Path, name: str, layer: str, kind: str) -> None:
            layers.extend(self._files(directory, name, layer, kind, issues, host))

        def inline(layer: str, data: dict[str, Any]) -> None:
            layers.append(_Layer(Origin(inv_file, layer, INVENTORY, shown=shown_inv), data, {}))

        def group_vars(name: str) -> dict[str, Any]:
            # Ansible reads ansible_group_priority into the group's rank, not into its vars.
            return {k: v for k, v in inv.groups[name].vars.items() if k != "ansible_group_priority"}

        for role in roles:
            files(self.root / "roles" / role / "defaults", "main",
                  f"role defaults of {role}", ROLE_DEFAULTS)
        inline("inventory file vars of group all", group_vars("all"))
        for group in groups:
            inline(f"inventory file vars of group {group}", group_vars(group))
        files(inv_dir / "group_vars", "all", "inventory group_vars/all", INVENTORY)
        files(self.root / "group_vars", "all", "playbook group_vars/all", PLAYBOOK)
        for group in groups:
            files(inv_dir / "group_vars", group, f"inventory group_vars/{group}", INVENTORY)
        for group in groups:
            files(self.root / "group_vars", group, f"playbook group_vars/{group}", PLAYBOOK)
        inline(f"inventory file vars of host {host}", inv.hosts[host].vars)
        files(inv_dir / "host_vars", host, f"inventory host_vars/{host}", INVENTORY)
        files(self.root / "host_vars", host, f"playbook host_vars/{host}", PLAYBOOK)
        site = self.root / "site.yml"
        for play in plays:
            layers.append(_Layer(Origin(site, f"play vars ({play.where})", PLAY_VARS,
                                        shown=self.shown(site)), play.vars, {}))
        for role in roles:
            files(self.root / "roles" / role / "vars", "main", f"role vars of {role}", ROLE_VARS)
        if self.extra_vars:
            layers.append(_Layer(Origin(Path("<extra vars>"), "extra vars", EXTRA_VARS,
                                        shown="<extra vars>"), self.extra_vars, {}))
        return layers

    def context(self, host: str) -> dict[str, Any]:
        inv = self.inventory
        groups = {"all": list(inv.hosts), "ungrouped": inv.hosts_in("ungrouped")
                  if "ungrouped" in inv.groups else []}
        groups.update({g: inv.hosts_in(g) for g in inv.groups if g not in groups})
        return {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "group_names": inv.host_groups(host),
            "groups": groups,
            "inventory_dir": str(inv.directory),
            "playbook_dir": str(self.root),
        }

    def host(self, host: str) -> tuple[Settings, list[SettingsIssue]]:
        issues = [SettingsIssue(i.file, i.key, i.value, i.message, i.allowed, i.line, (host,))
                  for i in self.issues]
        roles, plays = self.roles_for(host, issues)
        layers = self.layers(host, roles, plays, issues)
        file_problems = bool(issues)

        raw: dict[str, Any] = {}
        origins: dict[str, Origin] = {}
        setters: dict[str, list[tuple[Origin, Any]]] = {}
        for layer in layers:
            for key, value in layer.data.items():
                origin = Origin(layer.origin.file, layer.origin.layer, layer.origin.kind,
                                layer.lines.get(key), layer.origin.shown)
                raw[key] = value
                origins[key] = origin
                setters.setdefault(key, []).append((origin, value))

        issues.extend(self._guard(host, origins, setters))
        issues.extend(self._misplaced(host, raw, origins))
        for name in CONTEXT_NAMES:
            if name in raw:
                origin = origins.pop(name)
                issues.append(SettingsIssue(
                    origin.shown, name, raw.pop(name),
                    "is set by Ansible for every host (a magic variable) and cannot be set "
                    "in a file", "remove it; templates read common__host_groups and the like",
                    origin.line, (host,)))

        context = self.context(host)
        resolved: dict[str, Any] = {}
        if self.env is not None:
            resolver = Resolver(raw, context, self.env)
            resolved = resolver.resolve_all()
            for problem in resolver.problems:
                origin = origins[problem.key]
                message = problem.message
                if problem.cycle:
                    message += " (" + "; ".join(
                        f"{k} in {origins[k].shown}" + (f":{origins[k].line}"
                                                        if origins[k].line else "")
                        for k in dict.fromkeys(problem.cycle)) + ")"
                issues.append(SettingsIssue(origin.shown, problem.path, problem.value, message,
                                            problem.allowed, origin.line, (host,)))

        unresolved = set(raw) - set(resolved)
        problems, model = validate(resolved, roles, known_roles=self.known_roles)
        for problem in problems:
            if problem.key in unresolved:
                continue
            if problem.kind == "missing":
                if file_problems or problem.key in unresolved:
                    continue  # a file that could not be read may hold the key
                issues.append(self._missing(problem, roles, host))
                continue
            origin = origins[problem.key]
            message, allowed, shown, line = problem.message, problem.allowed, origin.shown, \
                origin.line
            if problem.kind == "null" and origin.kind == ROLE_DEFAULTS:
                env_file = self.shown(self.inventory.directory / "group_vars" / "all.yml")
                message = (f"is required and has no default ({origin.shown} leaves it empty): "
                           f"set it in {env_file}")
            value = NOTHING if problem.value is MISSING else problem.value
            issues.append(SettingsIssue(shown, problem.path, value, message, allowed,
                                        line, (host,)))

        settings = Settings(
            host=host,
            inventory=self.inventory,
            values=resolved,
            origins={k: v for k, v in origins.items() if k in resolved},
            context=context,
            roles=roles,
            model=model,
        )
        return settings, issues

    def _missing(self, problem: Any, roles: list[str], host: str) -> SettingsIssue:
        namespace = problem.key.split("__")[0]
        model = REGISTRY[namespace]
        if model.is_role:
            target = f"roles/{namespace}/defaults/main.yml"
            hint = (f"no layer sets it; the role's documented default belongs in {target} "
                    f"(or, if it differs per environment, set it in "
                    f"{self.shown(self.inventory.directory / 'group_vars' / 'all.yml')})")
        else:
            target = "group_vars/all.yml"
            hint = f"no layer sets it; project-wide values belong in {target}"
        return SettingsIssue(target, problem.path, NOTHING,
                             f"is not set: {hint}", problem.allowed, None, (host,))

    def _misplaced(self, host: str, raw: dict[str, Any],
                   origins: dict[str, Origin]) -> Iterator[SettingsIssue]:
        """Settings in play vars or role vars: no environment could override them."""
        for key, origin in origins.items():
            if origin.kind in (PLAY_VARS, ROLE_VARS) and "__" in key and not key.startswith("_"):
                yield SettingsIssue(
                    origin.shown, key, raw[key],
                    f"is a setting in {origin.layer}, which ranks above every inventory, so no "
                    f"environment could change it",
                    "settings live in roles/<role>/defaults/, group_vars/ or inventories/<env>/ "
                    "(group_vars/README.md); role vars hold only internal __names",
                    origin.line, (host,))

    def _guard(self, host: str, origins: dict[str, Origin],
               setters: dict[str, list[tuple[Origin, Any]]]) -> Iterator[SettingsIssue]:
        """An environment's value silently overridden by a playbook-level layer is an error."""
        for key, winner in origins.items():
            if winner.kind not in (PLAYBOOK, PLAY_VARS, ROLE_VARS):
                continue
            for origin, value in setters[key]:
                if origin.kind != INVENTORY or origin.file == winner.file:
                    continue
                where = f"{origin.shown}:{origin.line}" if origin.line else origin.shown
                winner_value = setters[key][-1][1]
                yield SettingsIssue(
                    winner.shown, key, winner_value,
                    f"is also set in {where} ({origin.layer}) to {value!r}; Ansible lets "
                    f"{winner.layer} win, so the environment's value is silently ignored",
                    f"one layer per key (group_vars/README.md): a value that differs per "
                    f"environment belongs only in inventories/<env>/, so remove it from "
                    f"{winner.shown}; a ministry-wide policy value belongs only in group_vars/, "
                    f"so remove it from {origin.shown}",
                    winner.line, (host,))
