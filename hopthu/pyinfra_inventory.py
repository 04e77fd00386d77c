"""Turn an Ansible YAML inventory into a pyinfra inventory, settings included.

pyinfra reads neither YAML inventories nor group_vars (LAB.md), and hopthu
keeps ONE source of settings (DESIGN.md §2). So each environment has a thin
``inventories/<env>/inventory.py`` that pyinfra executes as its inventory
file:

    from hopthu.pyinfra_inventory import groups_for_file as _groups_for_file
    globals().update(_groups_for_file(__file__))

which defines one module-level list per inventory group, ``[(host, data),
...]``, the format pyinfra's CLI reads. Before that, every host's settings
are loaded and checked with ``hopthu.settings.load_inventory``: a bad value
stops pyinfra with the file, the key and what is allowed, before any host
is contacted.

Each host's data carries:

- the connection, mapped from Ansible's variables: ``ansible_host`` ->
  ``ssh_hostname``, ``ansible_user`` -> ``ssh_user``, ``ansible_port`` ->
  ``ssh_port``, ``ansible_ssh_private_key_file`` -> ``ssh_key``, the
  ``UserKnownHostsFile`` of ``ansible_ssh_common_args`` ->
  ``ssh_known_hosts_file``, and always ``ssh_strict_host_key_checking="yes"``
  (host keys are pinned, never trusted on first use); ``ansible_become`` ->
  ``_sudo``;
- ``hopthu_settings``: the host's resolved settings (``Settings.values``),
  which the deploys in ``hopthu/deploys/`` render the templates with, and
  ``hopthu_inventory``: the hosts.yml, to resolve them again when a deploy
  learns a fact from the host (the Debian release).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from hopthu import inventory as inventory_mod

#: Host data keys of the resolved settings and of the inventory file
#: (hopthu.deploys.SETTINGS_KEY, INVENTORY_KEY).
SETTINGS_KEY = "hopthu_settings"
INVENTORY_KEY = "hopthu_inventory"

HostEntry = tuple[str, dict[str, Any]]


class InventoryMappingError(ValueError):
    """An Ansible connection variable that has no pyinfra equivalent."""


def known_hosts_file(ssh_common_args: str | None) -> str | None:
    """The ``UserKnownHostsFile`` named in ``ansible_ssh_common_args``, if any.

    Accepts ``-o UserKnownHostsFile=F``, ``-oUserKnownHostsFile=F`` and
    ``-o "UserKnownHostsFile F"``; ssh(1) uses the first one it reads.
    """
    if not ssh_common_args:
        return None
    words = shlex.split(str(ssh_common_args))
    options: list[str] = []
    for i, word in enumerate(words):
        if word == "-o" and i + 1 < len(words):
            options.append(words[i + 1])
        elif word.startswith("-o") and len(word) > 2:
            options.append(word[2:])
    for option in options:
        key, _, value = option.replace("=", " ", 1).partition(" ")
        if key.lower() == "userknownhostsfile" and value.strip():
            # ssh accepts several files separated by spaces; paramiko reads one.
            return value.strip().split()[0]
    return None


def connection_data(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """pyinfra's connector data for one host, from its resolved Ansible variables."""
    data: dict[str, Any] = {
        "ssh_hostname": str(values.get("ansible_host") or name),
        "ssh_strict_host_key_checking": "yes",
    }
    if values.get("ansible_user"):
        data["ssh_user"] = str(values["ansible_user"])
    if values.get("ansible_port"):
        data["ssh_port"] = int(values["ansible_port"])
    key = values.get("ansible_ssh_private_key_file") or values.get("ansible_private_key_file")
    if key:
        data["ssh_key"] = str(key)
    known_hosts = known_hosts_file(values.get("ansible_ssh_common_args"))
    if known_hosts:
        data["ssh_known_hosts_file"] = known_hosts
    if values.get("ansible_become") in (True, "true", "yes", "True", 1):
        data["_sudo"] = True
        if values.get("ansible_become_user"):
            data["_sudo_user"] = str(values["ansible_become_user"])
    connection = values.get("ansible_connection")
    if connection not in (None, "ssh", "smart"):
        raise InventoryMappingError(
            f"{name}: ansible_connection={connection!r}; the pyinfra inventory maps only SSH "
            f"hosts. Remove the setting or deploy this host with Ansible."
        )
    return data


def groups(inventory: str | Path) -> dict[str, list[HostEntry]]:
    """Every group of `inventory` as pyinfra's ``{group: [(host, data), ...]}``.

    Loads and checks every host's settings first (raises
    ``hopthu.settings.SettingsError``). ``all`` lists every host, each with
    its full data; the other groups list the same hosts with the same data.
    """
    from hopthu.settings import load_inventory

    inv = inventory_mod.load(inventory)
    resolved = load_inventory(inv.path)
    data: dict[str, dict[str, Any]] = {}
    for name in inv.hosts:
        values = dict(resolved[name].values)
        data[name] = {
            **connection_data(name, values),
            SETTINGS_KEY: values,
            INVENTORY_KEY: str(inv.path),
        }
    result: dict[str, list[HostEntry]] = {"all": [(h, data[h]) for h in inv.hosts]}
    for group in sorted(inv.groups):
        if group == "all":
            continue
        result[group] = [(h, data[h]) for h in inv.hosts_in(group)]
    return result


def groups_for_file(inventory_py: str | Path) -> dict[str, list[HostEntry]]:
    """``groups()`` of the hosts.yml beside an ``inventories/<env>/inventory.py``.

    Called by that file when pyinfra executes it. On bad settings it prints
    the error and exits with status 2, so pyinfra stops before it connects
    to any host and the operator reads the error, not a traceback.
    """
    from hopthu.settings import SettingsError

    hosts_file = Path(inventory_py).resolve().parent / "hosts.yml"
    try:
        return groups(hosts_file)
    except (SettingsError, inventory_mod.InventoryError, InventoryMappingError) as exc:
        print(
            f"hopthu: the settings of {hosts_file} are wrong; no host was contacted.\n{exc}",
            file=sys.stderr,
        )
        raise SystemExit(2) from exc
