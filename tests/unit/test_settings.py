"""hopthu.settings: precedence, reference resolution and the lab's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hopthu import ROOT
from hopthu.schema import REGISTRY
from hopthu.settings import SettingsError, load_host, load_inventory
from hopthu.settings.files import find_vars_files, read_vars_file
from hopthu.settings.plays import roles_with_defaults

#: probe key -> the value it must end with (each layer writes its own name);
#: the tree is conftest.py's `precedence_project`.
PRECEDENCE_EXPECTED: dict[str, object] = {
    "probe__defaults": "role defaults",
    "probe__inventory_file_all": "hosts.yml all",
    "probe__inventory_file_group": "hosts.yml site_a",
    "probe__child_beats_parent": "hosts.yml site_a",
    "probe__child_file_beats_parent_file": "inventory group_vars/site_a",
    "probe__alphabetical_tie_break": "inventory group_vars/beta",
    "probe__priority_beats_name": "inventory group_vars/early",
    "probe__group_vars_all_beats_inventory_file_groups": "inventory group_vars/all",
    "probe__inventory_group_beats_playbook_all": "inventory group_vars/site_a",
    "probe__playbook_group_beats_playbook_all": "playbook group_vars/site_a",
    "probe__host_file_vars_beat_groups": "hosts.yml mx1",
    "probe__inventory_host_vars_beat_file": "inventory host_vars/mx1",
    "probe__inventory_host_vars_beat_playbook_groups": "inventory host_vars/mx1",
    "probe__playbook_host_vars": "playbook host_vars/mx1",
    "probe__directory_files_in_order": "inventory group_vars/site_a/20-second.yml",
    "probe__file_beside_directory_is_ignored": "role defaults",
    "probe__dict_replaced_not_merged": {"b": 3},
    "probe__native_list": [1, 2],
    "probe__native_reference": [1, 2],
    "probe__mixed_reference": "role defaults and [1, 2]",
    "probe__nested_reference": {
        "groups": ["alpha", "beta", "early", "late", "mail_mx", "region", "site_a"],
        "port": 22,
    },
    "probe__int_reference": 23,
    "probe__filtered": "ROLE DEFAULTS",
}

Project = Any  # conftest.py's tree: .root, .inventory, .write(path, text)

# --- Precedence -------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "expected"), PRECEDENCE_EXPECTED.items(),
                         ids=list(PRECEDENCE_EXPECTED))
def test_each_layer_wins_where_ansible_says_it_does(
    precedence_project: Project, key: str, expected: object
) -> None:
    settings = load_host(precedence_project.inventory, "mx1", root=precedence_project.root)
    assert settings[key] == expected


def test_host_vars_beat_group_vars(precedence_project: Project) -> None:
    settings = load_host(precedence_project.inventory, "mx1", root=precedence_project.root)
    assert settings["probe__host_file_vars_beat_groups"] == "hosts.yml mx1"
    assert settings["probe__inventory_host_vars_beat_playbook_groups"] == "inventory host_vars/mx1"


def test_a_child_group_beats_its_parent(precedence_project: Project) -> None:
    settings = load_host(precedence_project.inventory, "mx1", root=precedence_project.root)
    assert settings["probe__child_beats_parent"] == "hosts.yml site_a"
    assert settings["probe__child_file_beats_parent_file"] == "inventory group_vars/site_a"


def test_groups_of_equal_depth_go_by_priority_then_name(precedence_project: Project) -> None:
    settings = load_host(precedence_project.inventory, "mx1", root=precedence_project.root)
    assert settings["probe__alphabetical_tie_break"] == "inventory group_vars/beta"
    assert settings["probe__priority_beats_name"] == "inventory group_vars/early"


def test_the_inventory_group_beats_the_playbook_all_but_not_the_playbook_group(
    precedence_project: Project,
) -> None:
    settings = load_host(precedence_project.inventory, "mx1", root=precedence_project.root)
    assert settings["probe__inventory_group_beats_playbook_all"] == "inventory group_vars/site_a"
    assert settings["probe__playbook_group_beats_playbook_all"] == "playbook group_vars/site_a"


def test_origins_name_the_file_and_layer_that_won(precedence_project: Project) -> None:
    settings = load_host(precedence_project.inventory, "mx1", root=precedence_project.root)
    origin = settings.origins["probe__directory_files_in_order"]
    assert origin.shown == "inventories/t/group_vars/site_a/20-second.yml"
    assert origin.layer == "inventory group_vars/site_a"
    assert origin.line == 1
    assert settings.origins["probe__defaults"].layer == "role defaults of probe"


def test_a_host_in_no_group_is_ungrouped(project: Project) -> None:
    project.write("inventories/t/hosts.yml", """
        all:
          hosts:
            lonely:
    """)
    settings = load_host(project.inventory, "lonely", root=project.root)
    assert settings.context["group_names"] == ["ungrouped"]
    assert settings["common__host_groups"] == ["ungrouped"]


def test_extra_vars_beat_everything(project: Project) -> None:
    settings = load_host(project.inventory, "mx1", root=project.root,
                         extra_vars={"common__debian_major": 12})
    assert settings["common__debian_major"] == 12
    assert settings.origins["common__debian_major"].layer == "extra vars"


def test_only_the_roles_site_yml_applies_to_a_host_give_defaults(project: Project) -> None:
    project.write("roles/mailonly/defaults/main.yml", "mailonly__x: 1\n")
    project.write("site.yml", """
        - name: Base
          hosts: all
          roles:
            - role: common
        - name: Mail
          hosts: mail_mx:mail_store:!mail_backup
          roles:
            - mailonly
    """)
    with pytest.raises(SettingsError) as caught:
        load_inventory(project.inventory, root=project.root)
    # mailonly has no model: an error for mx1, which gets the role; none for backup1.
    (issue,) = caught.value.errors
    assert issue.key == "mailonly__x" and issue.hosts == ("mx1",)
    assert "has no settings model" in issue.message


# --- References -----------------------------------------------------------------------


def test_a_lone_expression_keeps_its_native_type(project: Project) -> None:
    settings = load_host(project.inventory, "mx1", root=project.root)
    assert settings["common__host_groups"] == ["mail_mx", "mail_store"]
    assert settings["hopthu__environment"] == "t"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ common__sshd_port }}", 22),
        ("{{ common__sshd_port }} ", "22 "),
        ("port {{ common__sshd_port }}", "port 22"),
        ("{{ '22' }}", "22"),
        ("{{ 1 }}{{ 2 }}", "12"),
        ("a{{ none }}b", "ab"),
        ("{{ none }}", None),
        ("{{ common__apt_components + ['contrib'] }}", ["main", "contrib"]),
        ("{{ {'a': common__sshd_port} }}", {"a": 22}),
        ("{{ common__sshd_port > 1 }}", True),
        ("{{ 'a\\tb' }}", "a\\tb"),
        ("{{ common__sshd_port }}\n\n", "22\n\n"),
        ("x {{ common__sshd_port }}\n\n", "x 22\n\n"),
        ("{{ [1, 2] | map('string') | list }}", ["1", "2"]),
        ("{{ [3, 1] | sort }}", [1, 3]),
        ("{% if common__sshd_port == 22 %}yes{% endif %}", "yes"),
    ],
    ids=["native-int", "trailing-space", "mixed", "string-stays-string", "concat", "none-dropped",
         "none", "list-expr", "dict-expr", "bool", "backslash-kept", "newlines-after-expression",
         "newlines-kept", "filters", "builtin-filter", "statement"],
)
def test_references_resolve_as_ansible_2_19_does(
    project: Project, template: str, expected: object
) -> None:
    project.write("inventories/t/host_vars/mx1.yml", yaml.safe_dump({"vault_probe": template}))
    assert load_host(project.inventory, "mx1", root=project.root)["vault_probe"] == expected


def test_references_resolve_through_chains_and_inside_containers(project: Project) -> None:
    project.write("inventories/t/host_vars/mx1.yml", """
        vault_a: "{{ vault_b }}"
        vault_b: "{{ vault_c | length }}"
        vault_c: ["{{ inventory_hostname }}", "{{ group_names[0] }}"]
    """)
    settings = load_host(project.inventory, "mx1", root=project.root)
    assert settings["vault_c"] == ["mx1", "mail_mx"]
    assert settings["vault_a"] == 2


def test_unsafe_values_are_not_templated(project: Project) -> None:
    project.write("inventories/t/host_vars/mx1.yml", 'vault_raw: !unsafe "{{ not_a_var }}"\n')
    assert load_host(project.inventory, "mx1", root=project.root)["vault_raw"] == "{{ not_a_var }}"


def test_filters_of_filter_plugins_are_available(project: Project) -> None:
    project.write("filter_plugins/probe.py", """
        class FilterModule:
            def filters(self):
                return {"shout": lambda text: text.upper() + "!"}
    """)
    project.write("inventories/t/host_vars/mx1.yml", 'vault_x: "{{ \'hi\' | shout }}"\n')
    assert load_host(project.inventory, "mx1", root=project.root)["vault_x"] == "HI!"


def _vault_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = tmp_path / "vault-password"
    password.write_text("correct horse\n")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(password))
    return VaultLib([("default", VaultSecret(b"correct horse"))])


def test_vault_values_and_files_are_decrypted_with_the_password_file(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = _vault_password(tmp_path, monkeypatch)
    inline = vault.encrypt("s3cret").decode()
    project.write("inventories/t/host_vars/mx1/vars.yml",
                  'vault_inline: !vault |\n  ' + inline.replace("\n", "\n  ") + "\n"
                  'vault_use: "{{ vault_inline }}-{{ vault_file }}"\n')
    whole = vault.encrypt("vault_file: from-a-file\n").decode()
    project.write("inventories/t/host_vars/mx1/vault.yml", whole)
    settings = load_host(project.inventory, "mx1", root=project.root)
    assert settings["vault_use"] == "s3cret-from-a-file"


def test_vault_files_without_a_password_are_reported(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = _vault_password(tmp_path, monkeypatch)
    project.write("inventories/t/host_vars/mx1/vault.yml",
                  vault.encrypt("vault_file: x\n").decode())
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE")
    with pytest.raises(SettingsError, match="set ANSIBLE_VAULT_PASSWORD_FILE") as caught:
        load_host(project.inventory, "mx1", root=project.root)
    assert caught.value.errors[0].file == "inventories/t/host_vars/mx1/vault.yml"


def test_resolved_values_are_fresh_copies(project: Project) -> None:
    first = load_host(project.inventory, "mx1", root=project.root)
    first["common__packages"].append("mutated")
    again = load_host(project.inventory, "mx1", root=project.root)
    assert "mutated" not in again["common__packages"]


# --- The project's own inventories -----------------------------------------------------


INVENTORY_NAMES = sorted(p.parent.name for p in (ROOT / "inventories").glob("*/hosts.yml"))


@pytest.mark.parametrize("name", INVENTORY_NAMES)
def test_every_inventory_is_valid(name: str) -> None:
    hosts = load_inventory(name)
    assert hosts
    for settings in hosts.values():
        assert settings["hopthu__environment"] == name
        assert settings.model is not None


def test_the_lab_values_reach_the_lab_hosts() -> None:
    lab = load_inventory("lab")
    assert set(lab) == {"mail1", "mail2", "backup1", "peer1", "client1"}
    mail1 = lab["mail1"]
    assert mail1["common__apt_proxy"] == "http://198.18.0.1:3142"
    assert mail1["common__firewall_internal_networks"] == ["198.18.0.0/25"]
    assert mail1["common__resolver_insecure_domains"] == ["moj.gov.vn", "0.18.198.in-addr.arpa"]
    # peer.test is signed (DANE in the lab): validated from its trust anchor.
    assert mail1["common__resolver_trust_anchors"] == [
        "peer.test. DNSKEY 257 3 15 64+zKi4xRVxYw0SE/iVsGbtbQ40t8og1mOOf9xBj+XA="
    ]
    assert mail1["common__host_groups"] == ["mail_mx", "mail_store"]
    assert lab["peer1"]["common__host_groups"] == ["lab_peer"]
    assert mail1["common__timezone"] == "Asia/Ho_Chi_Minh"
    assert mail1["common__login_banner"].startswith("Hệ thống thư điện tử Bộ Tư pháp")
    assert mail1.origins["common__login_banner"].shown == "group_vars/all.yml"
    assert mail1.vars is mail1.values


def test_an_inventory_can_be_named_by_directory_or_hosts_file() -> None:
    by_name = load_host("lab", "mail1")
    by_dir = load_host(ROOT / "inventories" / "lab", "mail1")
    by_file = load_host(ROOT / "inventories" / "lab" / "hosts.yml", "mail1")
    assert by_name.values == by_dir.values == by_file.values


# --- Layers -----------------------------------------------------------------------------


def _keys(path: Path) -> set[str]:
    found: set[str] = set()
    for vars_dir in ("group_vars", "host_vars"):
        directory = path / vars_dir
        if directory.is_dir():
            for entry in {p.name.split(".")[0] for p in directory.iterdir()}:
                for file in find_vars_files(directory, entry):
                    found |= set(read_vars_file(file).data)
    return found


def _inventory_file_keys(hosts_yml: Path) -> set[str]:
    found: set[str] = set()
    todo = [yaml.safe_load(hosts_yml.read_text(encoding="utf-8"))["all"]]
    while todo:
        group = todo.pop() or {}
        found |= set(group.get("vars") or {})
        for host_vars in (group.get("hosts") or {}).values():
            found |= set(host_vars or {})
        todo.extend((group.get("children") or {}).values())
    return found


def test_policy_keys_and_environment_keys_are_disjoint() -> None:
    policy = _keys(ROOT)
    for inventory in sorted((ROOT / "inventories").glob("*/hosts.yml")):
        environment = _keys(inventory.parent) | _inventory_file_keys(inventory)
        assert policy & environment == set(), inventory.parent.name


def test_policy_does_not_repeat_role_defaults() -> None:
    policy = read_vars_file(ROOT / "group_vars" / "all.yml").data
    for role in roles_with_defaults(ROOT):
        for file in find_vars_files(ROOT / "roles" / role / "defaults", "main"):
            defaults = read_vars_file(file).data
            repeated = {k for k in policy if k in defaults and defaults[k] == policy[k]}
            assert repeated == set(), f"{role}: the policy repeats the defaults of {repeated}"


# --- Schema <-> defaults ---------------------------------------------------------------


@pytest.mark.parametrize("role", roles_with_defaults(ROOT))
def test_every_role_default_is_in_the_schema_and_every_field_has_a_default(role: str) -> None:
    assert role in REGISTRY, f"roles/{role} has defaults but no model in hopthu/schema/"
    defaults: set[str] = set()
    for file in find_vars_files(ROOT / "roles" / role / "defaults", "main"):
        defaults |= set(read_vars_file(file).data)
    fields = set(REGISTRY[role].model_fields)
    assert defaults - fields == set(), "keys of defaults/main.yml missing from the model"
    assert fields - defaults == set(), "model fields missing from defaults/main.yml"


@pytest.mark.parametrize("namespace", sorted(REGISTRY))
def test_every_field_is_described(namespace: str) -> None:
    model = REGISTRY[namespace]
    assert model.__doc__
    for name, field in model.model_fields.items():
        assert field.description and len(field.description) > 20, name


# --- argument_specs ---------------------------------------------------------------------


def test_argument_specs_are_in_sync_with_the_schema() -> None:
    from hopthu.settings_command import argspec_texts

    texts = argspec_texts(ROOT)
    assert texts, "no role has a model"
    for path, text in texts.items():
        assert path.is_file(), f"run `hopthu settings argspecs` to write {path}"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is out of date: run `hopthu settings argspecs`"
        )


def test_argument_specs_follow_ansible_lints_schema() -> None:
    import json

    import jsonschema
    from ansiblelint.schemas import __file__ as schemas

    schema = json.loads((Path(schemas).parent / "role-arg-spec.json").read_text())
    for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), schema)


def test_argument_specs_say_what_is_allowed_and_the_default() -> None:
    spec = yaml.safe_load((ROOT / "roles/common/meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(options) == set(REGISTRY["common"].model_fields)
    port = options["common__sshd_port"]
    assert (port["type"], port["required"], port["default"]) == ("int", False, 22)
    assert "Allowed: a port number, a whole number from 1 to 65535" in port["description"]
    assert options["common__debian_major"]["choices"] == [12, 13]
    zones = options["common__resolver_forward_zones"]
    assert (zones["elements"], sorted(zones["options"])) == ("dict", ["addresses", "name"])
    assert "default" not in options["common__host_groups"]  # templated: described instead
