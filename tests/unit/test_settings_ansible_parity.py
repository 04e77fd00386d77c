"""Ansible and hopthu.settings give every host of every inventory the same variables.

Ansible's side is its own machinery: InventoryManager, DataLoader and
VariableManager, with a play that applies the roles site.yml's plays apply to
the host (so role defaults count), and the Templar to resolve references.
hopthu's side is `load_inventory`. Every key hopthu defines must have the
same value in both, as plain Python data.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from hopthu import ROOT
from hopthu.settings import CONTEXT_NAMES, Settings, load_inventory
from hopthu.settings.plays import roles_with_defaults

INVENTORIES = sorted(p.parent for p in (ROOT / "inventories").glob("*/hosts.yml"))


@cache
def _init_ansible() -> None:
    """Set Ansible up as ansible-playbook would be, from the project root."""
    from ansible import context
    from ansible.module_utils.common.collections import ImmutableDict
    from ansible.plugins.loader import add_all_plugin_dirs, init_plugin_loader

    init_plugin_loader()
    add_all_plugin_dirs(str(ROOT))  # filter_plugins/ beside site.yml, as a playbook run does
    context.CLIARGS = ImmutableDict(check=False, diff=False, verbosity=0)


def plain(value: Any) -> Any:
    """Ansible 2.19's tagged and lazy values as plain Python data."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _site_plays(loader: Any, root: Path) -> list[dict[str, Any]] | None:
    site = root / "site.yml"
    if not site.is_file():
        return None
    return [p for p in loader.load_from_file(str(site)) if "hosts" in p]


@cache
def ansible_vars(inventory_dir: Path, root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """host -> every variable Ansible gives it (templated), and its magic context."""
    _init_ansible()
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play import Play
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    loader.set_basedir(str(root))
    inventory = InventoryManager(loader=loader, sources=[str(inventory_dir / "hosts.yml")])
    manager = VariableManager(loader=loader, inventory=inventory)
    plays = _site_plays(loader, root)
    result: dict[str, dict[str, Any]] = {}
    for host in inventory.get_hosts():
        if plays is None:
            roles: list[Any] = roles_with_defaults(root)
        else:
            roles = []
            for play in plays:
                if host in inventory.get_hosts(play["hosts"]):
                    roles.extend(r for r in play.get("roles") or [] if r not in roles)
        play = Play.load(
            {"name": "parity", "hosts": host.name, "gather_facts": False, "roles": roles},
            variable_manager=manager,
            loader=loader,
        )
        variables = manager.get_vars(play=play, host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=variables)
        result[host.name] = {
            key: plain(templar.template(value)) for key, value in variables.items()
            if "__" in key or key.startswith(("ansible_", "vault_")) or key in CONTEXT_NAMES
        }
    return result


@cache
def hopthu_settings(inventory_dir: Path) -> dict[str, Settings]:
    return load_inventory(inventory_dir)


def _hosts(inventory_dir: Path) -> list[str]:
    from hopthu.inventory import load

    return list(load(inventory_dir).hosts)


CASES = [
    pytest.param(inv, host, id=f"{inv.name}-{host}") for inv in INVENTORIES for host in _hosts(inv)
]


@pytest.mark.parametrize(("inventory_dir", "host"), CASES)
def test_ansible_and_hopthu_agree_on_every_value(inventory_dir: Path, host: str) -> None:
    ours = hopthu_settings(inventory_dir)[host]
    theirs = ansible_vars(inventory_dir)[host]
    namespaced = {k for k in theirs if "__" in k and not k.startswith("_")}
    assert namespaced == {k for k in ours.values if "__" in k}, "the same keys are defined"
    differing = {
        key: {"hopthu": value, "ansible": theirs.get(key, "<undefined>")}
        for key, value in ours.values.items()
        if theirs.get(key, object()) != value
    }
    assert differing == {}


@pytest.mark.parametrize(("inventory_dir", "host"), CASES)
def test_ansible_and_hopthu_give_the_same_base_context(inventory_dir: Path, host: str) -> None:
    ours = hopthu_settings(inventory_dir)[host].context
    theirs = ansible_vars(inventory_dir)[host]
    assert {name: theirs[name] for name in CONTEXT_NAMES} == ours


def test_lab_overrides_the_apt_proxy_and_both_engines_see_the_lab_value() -> None:
    lab = ROOT / "inventories" / "lab"
    default = ""  # roles/common/defaults/main.yml: no proxy
    ours = hopthu_settings(lab)["mail1"]
    theirs = ansible_vars(lab)["mail1"]
    assert ours["common__apt_proxy"] == theirs["common__apt_proxy"] == "http://198.18.0.1:3142"
    assert ours["common__apt_proxy"] != default
    assert ours.origins["common__apt_proxy"].shown == "inventories/lab/group_vars/all.yml"


def test_every_inventory_value_wins_in_ansible_too() -> None:
    """Each key an environment sets reaches its hosts, in Ansible as in hopthu."""
    from hopthu.settings.files import find_vars_files, read_vars_file

    checked = 0
    for inventory_dir in INVENTORIES:
        for host, ours in hopthu_settings(inventory_dir).items():
            theirs = ansible_vars(inventory_dir)[host]
            for key, origin in ours.origins.items():
                if origin.kind != "inventory" or "__" not in key:
                    continue
                assert theirs[key] == ours[key]
                checked += 1
        assert find_vars_files(inventory_dir / "group_vars", "all")
        assert read_vars_file(find_vars_files(inventory_dir / "group_vars", "all")[0]).data
    assert checked > 0


# --- Precedence and templating, on small trees -----------------------------------------


def test_ansible_ranks_every_layer_as_hopthu_does(precedence_project: Any) -> None:
    """conftest.py's tree sets keys in every layer; test_settings.py says who wins."""
    ours = load_inventory(precedence_project.inventory, root=precedence_project.root)
    theirs = ansible_vars(precedence_project.inventory, precedence_project.root)
    for host, settings in ours.items():
        assert {k: theirs[host].get(k, "<undefined>") for k in settings.values} == settings.values


TEMPLATES = [
    "{{ common__sshd_port }}",
    "{{ common__sshd_port }} ",
    "  {{ common__sshd_port }}",
    "port {{ common__sshd_port }}",
    "{{ '22' }}",
    "{{ 1 }}{{ 2 }}",
    "{{ 1 }}.{{ 2 }}",
    "a{{ none }}b",
    "{{ none }}",
    "{{ true }}{{ none }}",
    "{{ common__apt_components + ['contrib'] }}",
    "{{ common__apt_components }}x",
    "{{ {'port': common__sshd_port} }}",
    "{{ (1, 2) }}",
    "{{ common__sshd_port > 1 }}",
    "{{ 'a\\tb' }}",
    "{{ 'a' }}\n",
    "{{ common__sshd_port }}\n\n",
    "x {{ common__sshd_port }}\n\n",
    "{{ [1, 2] | map('string') }}",
    "{{ [3, 1] | sort | join(',') }}",
    "{{ undefined_thing | default('fallback') }}",
    "{{ group_names | length }}",
    "{{ inventory_hostname }}.{{ inventory_dir.split('/')[-1] }}",
    "{% if common__sshd_port == 22 %}{{ 5 }}{% endif %}",
    "{# note #}{{ common__apt_proxy }}",
    "{{ common__firewall_service_ports.ssh[0] }}",
    "{{ common__firewall_service_ports | dictsort | first }}",
    "{{ range(3) | list }}",
]


@pytest.mark.parametrize("template", TEMPLATES, ids=[repr(t) for t in TEMPLATES])
def test_ansible_and_hopthu_resolve_a_reference_alike(project: Any, template: str) -> None:
    import yaml

    project.write("inventories/t/host_vars/mx1.yml", yaml.safe_dump({"vault_probe": template}))
    ours = load_inventory(project.inventory, root=project.root)["mx1"]["vault_probe"]
    theirs = ansible_vars(project.inventory, project.root)["mx1"]["vault_probe"]
    assert (ours, type(ours)) == (theirs, type(theirs))


def _play_vars(inventory_dir: Path) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    """(play name, host, roles, the play's variables as Ansible resolves them per play)."""
    _init_ansible()
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play import Play
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    loader.set_basedir(str(ROOT))
    inventory = InventoryManager(loader=loader, sources=[str(inventory_dir / "hosts.yml")])
    manager = VariableManager(loader=loader, inventory=inventory)
    found = []
    for spec in _site_plays(loader, ROOT) or []:
        roles = [r if isinstance(r, str) else r["role"] for r in spec.get("roles") or []]
        if not roles:
            continue
        for host in inventory.get_hosts(spec["hosts"]):
            play = Play.load({"name": spec["name"], "hosts": host.name, "gather_facts": False,
                              "roles": roles}, variable_manager=manager, loader=loader)
            variables = manager.get_vars(play=play, host=host, include_hostvars=False)
            templar = Templar(loader=loader, variables=variables)
            resolved: dict[str, Any] = {}
            for key, value in variables.items():
                if key.split("__", 1)[0] in roles and "__" in key:
                    try:
                        resolved[key] = plain(templar.template(value))
                    except AnsibleError as error:
                        resolved[key] = AssertionError(str(error).splitlines()[0])
            found.append((spec["name"], host.name, roles, resolved))
    return found


@pytest.mark.parametrize("inventory_dir", INVENTORIES, ids=[i.name for i in INVENTORIES])
def test_each_play_resolves_its_roles_settings_with_only_what_that_play_sees(
    inventory_dir: Path,
) -> None:
    """A setting that names another play's role default resolves in hopthu (which sees
    every role a host gets) but is undefined in Ansible's play: this catches it offline."""
    broken = [
        f"{play} / {host}: {key}: {value}"
        for play, host, _roles, values in _play_vars(inventory_dir)
        for key, value in values.items() if isinstance(value, AssertionError)
    ]
    assert broken == []
