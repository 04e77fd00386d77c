"""Which hosts the suite checks, and how it reaches them.

Hosts come from the inventory (`hopthu.inventory`); their variables from the
settings model (`hopthu.settings.load_host`), so every expected value in a
check is the value the deploy used.

The suite talks to hosts with OpenSSH (testinfra's ``ssh://`` backend), never
paramiko, which does not check host keys. For the lab it uses the
ssh_config that `hopthu lab up` writes (pinned known_hosts, the lab key, a
ControlPath). For any other inventory (or a lab host the lab's config does
not list yet) it writes ``reports/<inventory>/ssh_config`` from the hosts'
``ansible_*`` connection variables, with the same connection sharing as
ansible.cfg, and refuses any setting that turns host key checking off.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hopthu import inventory as inventory_mod

#: Written by `hopthu lab up`: one Host entry per lab host.
LAB_SSH_CONFIG = Path("/var/lib/hopthu/lab/ssh/config")

#: The same directory ansible.cfg uses, so Ansible, pyinfra and the suite can
#: share one master connection per host.
CONTROL_DIR = Path("/tmp/hopthu-ssh")


class TargetError(RuntimeError):
    """The inventory does not say how to reach a host; the message says what to add."""


@dataclass
class Target:
    name: str
    address: str
    #: Ansible's group_names: every group of the host, ancestors included, without `all`.
    groups: list[str]
    #: The host's variables as the deploy sees them (settings model, role defaults included).
    values: dict[str, Any] = field(default_factory=dict)
    #: The settings model's object for the host (hopthu.settings.Settings), or None
    #: when the settings did not load.
    settings: Any = None


def load_inventory(name: str) -> inventory_mod.Inventory:
    return inventory_mod.load(name)


def inventory_vars(inv: inventory_mod.Inventory, host: str) -> dict[str, Any]:
    """The host's variables from hosts.yml alone, in Ansible's precedence."""
    merged: dict[str, Any] = {}
    for group in inv.groups_by_precedence(host):
        merged.update(inv.groups[group].vars)
    merged.update(inv.hosts[host].vars)
    return merged


def load_settings(inv: inventory_mod.Inventory, host: str) -> Any:
    """The settings of `host` (hopthu.settings.Settings: `.values`, `.roles`...)."""
    from hopthu import settings  # imported late: loading the model takes a moment

    return settings.load_host(inv.path, host)


def ssh_options(values: dict[str, Any], host: str) -> list[tuple[str, str]]:
    """ssh_config options for `host` from its ansible_* connection variables."""
    options: list[tuple[str, str]] = [("HostName", str(values.get("ansible_host", host)))]
    if values.get("ansible_port"):
        options.append(("Port", str(values["ansible_port"])))
    user = values.get("ansible_user") or values.get("ansible_ssh_user")
    if user:
        options.append(("User", str(user)))
    key = values.get("ansible_ssh_private_key_file") or values.get("ansible_private_key_file")
    if key:
        options += [("IdentityFile", str(key)), ("IdentitiesOnly", "yes")]
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        options += _parse_ssh_args(str(values.get(var) or ""), host, var)
    return options


def _parse_ssh_args(text: str, host: str, var: str) -> list[tuple[str, str]]:
    words = shlex.split(text)
    options: list[tuple[str, str]] = []
    flags = {"-i": "IdentityFile", "-p": "Port", "-J": "ProxyJump", "-l": "User"}
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-o", *flags) and i + 1 < len(words):
            value = words[i + 1]
            i += 2
        elif word.startswith("-o") and len(word) > 2:
            word, value = "-o", word[2:]
            i += 1
        else:
            raise TargetError(
                f"{host}: {var} has {word!r}, which the suite cannot turn into an "
                "ssh_config option: write SSH options as '-o Key=Value' (or -i, -p, -J, -l)"
            )
        if word == "-o":
            key, sep, val = value.partition("=")
            if not sep:
                key, _, val = value.partition(" ")
            options.append((key.strip(), val.strip()))
        else:
            options.append((flags[word], value))
    for key, val in options:
        if key.lower() == "stricthostkeychecking" and val.lower() in ("no", "off"):
            raise TargetError(
                f"{host}: {var} turns host key checking off; the suite refuses to check a "
                "host it cannot authenticate. Pin the host key in a known_hosts file "
                "(-o UserKnownHostsFile=FILE -o StrictHostKeyChecking=yes)"
            )
    return options


def write_ssh_config(targets: list[Target], directory: Path) -> Path:
    """Write an ssh_config with one Host entry per target; return its path."""
    CONTROL_DIR.mkdir(mode=0o700, exist_ok=True)
    lines = [
        "# Written by the hopthu infra suite (tests/infra/targets.py) for its last run;",
        "# rewritten on every run. Use: ssh -F THIS_FILE HOST",
    ]
    for target in targets:
        lines.append(f"Host {target.name}")
        for key, val in ssh_options(target.values, target.name):
            lines.append(f"    {key} {val}")
        lines += [
            "    BatchMode yes",
            "    ControlMaster auto",
            "    ControlPersist 120s",
            f"    ControlPath {CONTROL_DIR}/%C",
            "",
        ]
    path = directory / "ssh_config"
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


def lab_config_covers(targets: list[Target], config: Path = LAB_SSH_CONFIG) -> bool:
    """Whether the lab's own ssh_config has a Host entry for every target."""
    if not config.is_file():
        return False
    names: set[str] = set()
    for line in config.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].lower() == "host":
            names.update(words[1:])
    return all(t.name in names for t in targets)


def ssh_config_for(inventory_name: str, targets: list[Target], reports_dir: Path) -> Path:
    """The ssh_config to use: the lab's own, or one written into `reports_dir`.

    A written config stays after the run (it holds names, addresses and key
    paths, no secrets), so the hint in a failure message can be run by hand.
    """
    if inventory_name == "lab" and lab_config_covers(targets):
        return LAB_SSH_CONFIG
    reports_dir.mkdir(parents=True, exist_ok=True)
    return write_ssh_config(targets, reports_dir)
