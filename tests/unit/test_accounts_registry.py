"""The accounts registry's checks (hopthu/accounts/registry.py): every bad
entry is refused with a message that names it and says what to do, and a
good registry loads to the normalized form the host tool reads.

Controls: ART4-FORMAT, ART4-ONE-PERSONAL, ART4-UNIT, ART9-UNICODE, ART13-DELEGATE.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopthu.accounts.registry import RegistryError, load, quota_bytes, validate

DOMAINS = {"moj.gov.vn"}

GOOD: list[dict[str, Any]] = [
    {"address": "anvn@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00017",
     "unit": "Cục Công nghệ thông tin", "display_name": "Nguyễn Văn An", "quota": "2 GiB"},
    {"address": "binhtt@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00018",
     "unit": "Văn phòng Bộ", "display_name": "Trần Thị Bình", "quota": 1073741824,
     "previous": ["binh@moj.gov.vn"]},
    {"address": "vanphong@moj.gov.vn", "kind": "unit", "unit": "Văn phòng Bộ",
     "display_name": "Văn phòng Bộ", "owner": "binhtt@moj.gov.vn",
     "delegates": ["anvn@moj.gov.vn"]},
    {"address": "lienhe@moj.gov.vn", "kind": "alias", "unit": "Văn phòng Bộ",
     "display_name": "Liên hệ", "targets": ["vanphong@moj.gov.vn", "x@example.org"]},
    {"address": "cu@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00001",
     "unit": "Văn phòng Bộ", "display_name": "Lê Văn Cũ", "state": "archived",
     "forward_to": "vanphong@moj.gov.vn"},
]


def problems(entries: list[Any]) -> list[str]:
    with pytest.raises(RegistryError) as info:
        validate(entries, domains=DOMAINS)
    return [f"{i.entry}: {i.message}" for i in info.value.issues]


def changed(index: int, **fields: Any) -> list[dict[str, Any]]:
    entries = copy.deepcopy(GOOD)
    for key, value in fields.items():
        if value is None:
            entries[index].pop(key, None)
        else:
            entries[index][key] = value
    return entries


def test_a_good_registry_loads_to_the_normalized_form() -> None:
    out = validate(copy.deepcopy(GOOD), domains=DOMAINS)
    assert [e["address"] for e in out] == [e["address"] for e in GOOD]
    assert out[0] == {
        "address": "anvn@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00017",
        "unit": "Cục Công nghệ thông tin", "display_name": "Nguyễn Văn An",
        "quota": 2 * 1024**3, "state": "active", "previous": [], "owner": None,
        "delegates": [], "targets": [], "forward_to": None,
    }
    assert out[2]["staff_id"] is None and out[2]["owner"] == "binhtt@moj.gov.vn"
    assert out[3]["quota"] == 0 and out[3]["targets"] == ["vanphong@moj.gov.vn", "x@example.org"]


@pytest.mark.control("ART4-FORMAT")
@pytest.mark.parametrize("address, expected", [
    ("An@moj.gov.vn", "write 'an@moj.gov.vn'"),
    ("nguyễn@moj.gov.vn", "no accents in an address"),
    ("an@", "is not account@domain"),
    ("an.@moj.gov.vn", "is not account@domain"),
    ("an@mail.example.org", "is not in a mail domain of this system"),
])
def test_a_malformed_address_is_refused(address: str, expected: str) -> None:
    found = problems(changed(0, address=address))
    assert any(expected in p and f"accounts[0] ({address})" in p for p in found), found


@pytest.mark.control("ART4-ONE-PERSONAL")
def test_a_second_personal_mailbox_for_one_person_is_refused() -> None:
    entries = copy.deepcopy(GOOD) + [{
        "address": "an2@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00017",
        "unit": "Vụ Pháp chế", "display_name": "Nguyễn Văn An"}]
    assert problems(entries) == [
        ("accounts[5] (an2@moj.gov.vn): staff_id BTP-00017 already has a personal mailbox, "
        "accounts[0] (anvn@moj.gov.vn): a person gets exactly one (Art. 4); make this a unit "
        "mailbox, or archive one")]


@pytest.mark.control("ART4-ONE-PERSONAL")
def test_an_archived_mailbox_does_not_hold_its_persons_one_mailbox() -> None:
    entries = copy.deepcopy(GOOD) + [{
        "address": "cuvl@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00001",
        "unit": "Vụ Pháp chế", "display_name": "Lê Văn Cũ"}]
    assert len(validate(entries, domains=DOMAINS)) == 6


def test_an_address_used_twice_even_as_a_former_address_is_refused() -> None:
    found = problems(changed(0, previous=["binh@moj.gov.vn"]))
    assert found == [("accounts[1] (binhtt@moj.gov.vn): the address binh@moj.gov.vn is already "
                     "taken by accounts[0] (anvn@moj.gov.vn): an address, alias or former "
                     "address belongs to one entry only")]


@pytest.mark.control("ART13-DELEGATE")
@pytest.mark.parametrize("field, value, expected", [
    ("owner", "khong@moj.gov.vn", "the owner khong@moj.gov.vn is not in the registry"),
    ("delegates", ["lienhe@moj.gov.vn"],
     "the delegate lienhe@moj.gov.vn is a active alias entry"),
    ("delegates", ["cu@moj.gov.vn"], "the delegate cu@moj.gov.vn is a archived personal"),
    ("delegates", ["binhtt@moj.gov.vn"], "is also listed as a delegate"),
    ("owner", None, "a unit mailbox names its owner"),
])
def test_owners_and_delegates_are_active_personal_mailboxes(field: str, value: Any,
                                                            expected: str) -> None:
    found = problems(changed(2, **{field: value}))
    assert any(expected in p for p in found), found


@pytest.mark.control("ART9-UNICODE")
def test_a_decomposed_name_is_refused_with_the_composed_form() -> None:
    import unicodedata

    found = problems(changed(0, display_name=unicodedata.normalize("NFD", "Nguyễn Văn An")))
    assert len(found) == 1 and "is not in Unicode NFC" in found[0]
    assert "write 'Nguyễn Văn An'" in found[0]


@pytest.mark.parametrize("fields, expected", [
    ({"kind": "mailbox"}, "kind 'mailbox' is not one of personal, unit, alias"),
    ({"state": "deleted"}, "state 'deleted' is not one of active, disabled, archived"),
    ({"staff_id": None}, "staff_id None is missing or malformed"),
    ({"staff_id": "btp 17"}, "staff_id 'btp 17' is missing or malformed"),
    ({"quota": "2 GB"}, "quota '2 GB': a quota is bytes or 'N KiB|MiB|GiB|TiB'"),
    ({"quota": -1}, "quota -1: a quota is not negative"),
    ({"unit": ""}, "unit is missing or empty"),
    ({"display_name": "Nguyễn  Văn An"}, "has stray spaces: write 'Nguyễn Văn An'"),
    ({"displayname": "X"}, "unknown key 'displayname': did you mean 'display_name'?"),
    ({"targets": ["x@moj.gov.vn"]}, "'targets' belongs only to a alias entry"),
    ({"forward_to": "vanphong@moj.gov.vn"}, "forward_to applies only to an archived mailbox"),
])
def test_each_bad_field_gets_its_own_message(fields: dict[str, Any], expected: str) -> None:
    found = problems(changed(0, **fields))
    assert any(expected in p for p in found), found
    assert all(p.startswith("accounts[0]") for p in found), found


def test_an_alias_to_a_missing_mailbox_is_refused() -> None:
    found = problems(changed(3, targets=["khong@moj.gov.vn"]))
    assert found == [("accounts[3] (lienhe@moj.gov.vn): the target khong@moj.gov.vn is not an "
                     "active or disabled mailbox of the registry: mail to this alias would bounce")]


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    entries = changed(0, state="gone")
    entries[1]["kind"] = "person"
    (tmp_path / "accounts.yml").write_text(
        yaml.safe_dump({"accounts": entries}, allow_unicode=True, sort_keys=False),
        encoding="utf-8")
    with pytest.raises(RegistryError) as info:
        load(tmp_path, domains=DOMAINS, shown="inventories/x/accounts.yml")
    text = str(info.value)
    assert "2 problems; nothing was applied" in text
    assert "inventories/x/accounts.yml:2: accounts[0] (anvn@moj.gov.vn)" in text
    assert [i.line for i in info.value.issues] == [2, 9]


def test_a_registry_that_is_not_utf8_is_refused_before_parsing(tmp_path: Path) -> None:
    # "Hà Nội" in TCVN3 bytes: not UTF-8.
    (tmp_path / "accounts.yml").write_bytes(b"accounts: []\n# H\xb5 N\xe9i\n")
    with pytest.raises(RegistryError, match="is not UTF-8"):
        load(tmp_path, domains=DOMAINS)


def test_no_registry_file_is_an_empty_registry(tmp_path: Path) -> None:
    assert load(tmp_path) == []


@pytest.mark.parametrize("text, expected", [
    (0, 0), (1000, 1000), ("1 GiB", 1 << 30), ("500MiB", 500 << 20), ("3 KiB", 3072),
])
def test_quotas_are_bytes(text: Any, expected: int) -> None:
    assert quota_bytes(text) == expected


@pytest.mark.parametrize("bad", [True, "1.5 GiB", "1 gb", "", -5])
def test_bad_quotas_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        quota_bytes(bad)


def test_the_lab_registry_is_valid() -> None:
    from hopthu import ROOT

    entries = load(ROOT / "inventories" / "lab", domains=DOMAINS)
    assert {e["kind"] for e in entries} == {"personal", "unit", "alias"}


@pytest.mark.control("ART9-UNICODE")
@pytest.mark.parametrize("pasted, encoding, meant", [
    ("Hµ Néi", "TCVN3", "Hà Nội"),
    ("NguyÔn V¨n An", "TCVN3", "Nguyễn Văn An"),
    ("Nguyeãn Vaên An", "VNI", "Nguyễn Văn An"),
])
def test_a_legacy_encoded_name_is_refused_with_the_intended_text(pasted: str, encoding: str,
                                                                 meant: str) -> None:
    found = problems(changed(0, display_name=pasted))
    assert len(found) == 1, found
    assert f"display_name looks like {encoding}" in found[0]
    assert f'is probably "{meant}"' in found[0]


@pytest.mark.control("ART13-HANDOVER")
def test_handover_rewrites_only_the_owner_and_refuses_a_bad_new_owner(tmp_path: Path) -> None:
    from hopthu.accounts.registry import set_owner

    entries = copy.deepcopy(GOOD) + [{
        "address": "chilm@moj.gov.vn", "kind": "personal", "staff_id": "BTP-00019",
        "unit": "Văn phòng Bộ", "display_name": "Lê Minh Chí"}]
    body = yaml.safe_dump({"accounts": entries}, allow_unicode=True, sort_keys=False)
    text = "---\n# Sổ đăng ký: a comment that must survive\n" + body.replace(
        "- address: vanphong", "# the office's mailbox\n- address: vanphong")
    path = tmp_path / "accounts.yml"
    path.write_text(text, encoding="utf-8")
    for unit, new, expected in [
        ("vanphong@moj.gov.vn", "anvn@moj.gov.vn", "is also listed as a delegate"),
        ("vanphong@moj.gov.vn", "cu@moj.gov.vn", "is a archived personal entry"),
        ("vanphong@moj.gov.vn", "khong@moj.gov.vn", "is not in the registry"),
        ("lienhe@moj.gov.vn", "chilm@moj.gov.vn", "is not a unit mailbox of the registry"),
    ]:
        with pytest.raises(RegistryError, match=expected):
            set_owner(tmp_path, unit, new)
        assert path.read_text(encoding="utf-8") == text
    assert set_owner(tmp_path, "vanphong@moj.gov.vn", "chilm@moj.gov.vn") == "binhtt@moj.gov.vn"
    after = path.read_text(encoding="utf-8")
    assert after == text.replace("owner: binhtt@moj.gov.vn", "owner: chilm@moj.gov.vn")
    assert load(tmp_path, domains=DOMAINS)[2]["owner"] == "chilm@moj.gov.vn"


def test_the_settings_check_refuses_a_registry_address_the_lab_also_seeds(tmp_path: Path) -> None:
    """The host tool would refuse it too, but only after other roles had run:
    the settings check (both engines' first step) stops it before any host."""
    import shutil

    from hopthu import ROOT
    from hopthu.settings import SettingsError, load_inventory

    inventory = tmp_path / "lab"
    shutil.copytree(ROOT / "inventories" / "lab", inventory)
    text = (inventory / "accounts.yml").read_text(encoding="utf-8")
    (inventory / "accounts.yml").write_text(
        text.replace("address: vanphongbo@moj.gov.vn", "address: vanphong@moj.gov.vn"),
        encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_inventory(inventory, root=ROOT)
    [issue] = info.value.errors
    assert issue.key == "accounts[2] (vanphong@moj.gov.vn)"
    assert "also one of the lab's seed accounts" in issue.message
