"""Small project trees for the settings tests: a root with roles/, group_vars/, inventories/."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field, create_model

from hopthu import ROOT
from hopthu.schema import REGISTRY, SettingsModel


class Project:
    """A temporary project tree: the real common defaults and policy, one inventory `t`."""

    def __init__(self, root: Path):
        self.root = root
        self.inventory = root / "inventories" / "t"

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path


LAB_LIKE_HOSTS = """
    all:
      children:
        mail_mx:
          hosts:
            mx1:
              ansible_host: 192.0.2.10
        mail_store:
          hosts:
            mx1:
        mail_backup:
          hosts:
            backup1:
              ansible_host: 192.0.2.20
"""


#: What every real inventory sets in its group_vars/all.yml (hopthu/schema/dns.py):
#: the published mail hosts and the TTL. The fixture trees' inventories are
#: rewritten by the tests, so these ride along with the copied policy file.
FIXTURE_DNS = """
dns__hosts:
  - host: "mx1"
    name: "mx1.moj.gov.vn"
    addresses: ["192.0.2.10"]
    services: ["mx", "submission", "imap", "pop3", "web"]
dns__ttl: 300
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A valid tree: roles/common/defaults and group_vars/all.yml copied, hosts mx1 and backup1."""
    root = tmp_path / "project"
    (root / "roles" / "common" / "defaults").mkdir(parents=True)
    shutil.copy(ROOT / "roles" / "common" / "defaults" / "main.yml",
                root / "roles" / "common" / "defaults" / "main.yml")
    (root / "group_vars").mkdir()
    shutil.copy(ROOT / "group_vars" / "all.yml", root / "group_vars" / "all.yml")
    with (root / "group_vars" / "all.yml").open("a", encoding="utf-8") as policy:
        policy.write(FIXTURE_DNS)
    tree = Project(root)
    tree.write("inventories/t/hosts.yml", LAB_LIKE_HOSTS)
    return tree


def _register_probe(keys: set[str]) -> type[SettingsModel]:
    """A `probe` role namespace whose keys take any value, for precedence tests."""

    class ProbeBase(SettingsModel):
        namespace = "probe"

    fields: dict[str, Any] = {k: (Any, Field(description=f"probe {k}")) for k in sorted(keys)}
    probe = create_model("ProbeSettings", __base__=ProbeBase, **fields)
    REGISTRY["probe"] = probe
    return probe


@pytest.fixture
def precedence_project(project: Project) -> Iterator[Project]:
    """Every layer Ansible ranks sets `probe__*` keys; each value names the layer that set it.

    test_settings.py says which layer must win for each key; the parity test
    checks that Ansible agrees. The `probe` namespace exists only during the
    test.
    """
    p = project
    p.write("roles/probe/defaults/main.yml", """
        probe__defaults: role defaults
        probe__inventory_file_all: role defaults
        probe__file_beside_directory_is_ignored: role defaults
        probe__dict_replaced_not_merged: {a: 1, b: 2}
        probe__native_list: [1, 2]
        probe__native_reference: "{{ probe__native_list }}"
        probe__mixed_reference: "{{ probe__defaults }} and {{ probe__native_list }}"
        probe__nested_reference:
          groups: "{{ group_names }}"
          port: "{{ common__sshd_port }}"
        probe__int_reference: "{{ common__sshd_port + 1 }}"
        probe__filtered: "{{ probe__defaults | upper }}"
    """)
    p.write("inventories/t/hosts.yml", """
        all:
          vars:
            probe__inventory_file_all: hosts.yml all
            probe__inventory_file_group: hosts.yml all
          children:
            region:
              vars:
                probe__child_beats_parent: hosts.yml region
              children:
                site_a:
                  vars:
                    probe__inventory_file_group: hosts.yml site_a
                    probe__child_beats_parent: hosts.yml site_a
                    probe__group_vars_all_beats_inventory_file_groups: hosts.yml site_a
                  hosts:
                    mx1:
            alpha:
              hosts:
                mx1:
            beta:
              hosts:
                mx1:
            early:
              vars:
                ansible_group_priority: 10
              hosts:
                mx1:
            late:
              hosts:
                mx1:
            mail_mx:
              hosts:
                mx1:
                  probe__host_file_vars_beat_groups: hosts.yml mx1
                  probe__inventory_host_vars_beat_file: hosts.yml mx1
    """)
    p.write("inventories/t/group_vars/all.yml", """
        probe__group_vars_all_beats_inventory_file_groups: inventory group_vars/all
    """)
    p.write("inventories/t/group_vars/region.yml", """
        probe__child_file_beats_parent_file: inventory group_vars/region
    """)
    p.write("inventories/t/group_vars/site_a/10-first.yml", """
        probe__child_file_beats_parent_file: inventory group_vars/site_a
        probe__inventory_group_beats_playbook_all: inventory group_vars/site_a
        probe__directory_files_in_order: inventory group_vars/site_a/10-first.yml
        probe__host_file_vars_beat_groups: inventory group_vars/site_a
    """)
    p.write("inventories/t/group_vars/site_a/20-second.yml", """
        probe__directory_files_in_order: inventory group_vars/site_a/20-second.yml
        probe__dict_replaced_not_merged: {b: 3}
    """)
    p.write("inventories/t/group_vars/site_a.yml", """
        probe__file_beside_directory_is_ignored: inventory group_vars/site_a.yml
    """)
    p.write("inventories/t/group_vars/alpha.yml", """
        probe__alphabetical_tie_break: inventory group_vars/alpha
        probe__priority_beats_name: inventory group_vars/alpha
    """)
    p.write("inventories/t/group_vars/beta.yaml", """
        probe__alphabetical_tie_break: inventory group_vars/beta
    """)
    p.write("inventories/t/group_vars/early.yml", """
        probe__priority_beats_name: inventory group_vars/early
    """)
    p.write("inventories/t/group_vars/late.yml", """
        probe__priority_beats_name: inventory group_vars/late
    """)
    p.write("inventories/t/host_vars/mx1.yml", """
        probe__inventory_host_vars_beat_file: inventory host_vars/mx1
        probe__inventory_host_vars_beat_playbook_groups: inventory host_vars/mx1
    """)
    with (p.root / "group_vars" / "all.yml").open("a", encoding="utf-8") as policy:
        policy.write(
            "probe__inventory_group_beats_playbook_all: playbook group_vars/all\n"
            "probe__playbook_group_beats_playbook_all: playbook group_vars/all\n"
            "probe__playbook_host_vars: playbook group_vars/all\n"
        )
    p.write("group_vars/site_a.yml", """
        probe__playbook_group_beats_playbook_all: playbook group_vars/site_a
        probe__inventory_host_vars_beat_playbook_groups: playbook group_vars/site_a
    """)
    p.write("host_vars/mx1.yml", """
        probe__playbook_host_vars: playbook host_vars/mx1
    """)
    keys = {k for path in p.root.rglob("*.y*ml") for k in _yaml_keys(path)}
    _register_probe({k for k in keys if k.startswith("probe__")})
    try:
        yield p
    finally:
        REGISTRY.pop("probe", None)


def _yaml_keys(path: Path) -> set[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        return set()
    found = set(data)
    for group in _groups(data.get("all")):
        found |= set(group.get("vars") or {})
        for host_vars in (group.get("hosts") or {}).values():
            found |= set(host_vars or {})
    return found


def _groups(group: Any) -> Iterator[dict[str, Any]]:
    if isinstance(group, dict):
        yield group
        for child in (group.get("children") or {}).values():
            yield from _groups(child)
