"""hopthu.accounts.naming makes the ministry's account names: given name, then initials.

Exact names for real full names, the numbering on a clash, and the refusals: an empty name,
digits, punctuation, letters with no ASCII form, and TCVN3 or VNI text pasted from an old
document.
"""

from __future__ import annotations

import unicodedata

import pytest

from hopthu.accounts.naming import suggest_account


@pytest.mark.parametrize(
    ("full_name", "account"),
    [
        # Not "anvn": the initials go in the name's order, Nguyễn then Văn (as Lê Minh Chí
        # gives "chilm", not "chiml").
        ("Nguyễn Văn An", "annv"),
        ("Trần Thị Bình", "binhtt"),
        ("Đỗ Đức Đạt", "datdd"),
        ("Lê Minh Chí", "chilm"),
        ("Phạm Quang", "quangp"),
        ("Nguyễn Thị Minh Khai", "khaintm"),
        ("Hoàng Thị Ý Nhi", "nhihty"),
        ("Âu Dương Lân", "lanad"),
        ("Ưng Hoàng Phúc", "phucuh"),
        ("Lưu Hữu Phước", "phuoclh"),
        ("Nguyễn Thị Thu Thủy", "thuyntt"),
        ("Huỳnh Thúc Kháng", "khanght"),
        ("Võ Nguyên Giáp", "giapvn"),
        ("An", "an"),
        ("ĐẶNG THÁI SƠN", "sondt"),
    ],
)
def test_convention(full_name: str, account: str):
    assert suggest_account(full_name) == account


def test_nfd_input_gives_the_same_name():
    assert suggest_account(unicodedata.normalize("NFD", "Đỗ Đức Đạt")) == "datdd"
    assert suggest_account(unicodedata.normalize("NFD", "Nguyễn Văn An")) == "annv"


def test_whitespace_is_collapsed():
    assert suggest_account("  Nguyễn \t Văn\n\nAn  ") == "annv"
    assert suggest_account("Nguyễn\u00a0Văn An") == "annv"


def test_hyphenated_words():
    assert suggest_account("Nguyễn Thị Mai-Anh") == "maianhnt"
    assert suggest_account("Lê-Nguyễn Văn An") == "anlnv"


def test_other_latin_names_lose_their_accents():
    assert suggest_account("José Müller") == "mullerj"
    assert suggest_account("François Côté") == "cotef"


def test_clash_appends_a_number():
    assert suggest_account("Nguyễn Văn An", taken=["annv"]) == "annv2"
    assert suggest_account("Nguyễn Văn An", taken=["annv", "annv2"]) == "annv3"
    assert suggest_account("Nguyễn Văn An", taken=["annv", "annv3"]) == "annv2"
    assert suggest_account("Nguyễn Văn An", taken=["annv2"]) == "annv"


def test_clash_ignores_case_and_takes_any_iterable():
    assert suggest_account("Nguyễn Văn An", taken=["AnNV", "ANNV2"]) == "annv3"
    assert suggest_account("Trần Thị Bình", taken=(name for name in ["binhtt"])) == "binhtt2"
    assert suggest_account("Trần Thị Bình", taken={"annv"}) == "binhtt"


@pytest.mark.parametrize("full_name", ["", "   ", "\t\n"])
def test_empty_name_is_refused(full_name: str):
    with pytest.raises(ValueError, match="the full name is empty"):
        suggest_account(full_name)


@pytest.mark.parametrize("full_name", ["Nguyễn Văn An 2", "Trần Thị B1nh", "Lê ² Chí"])
def test_digits_are_refused(full_name: str):
    with pytest.raises(ValueError, match=r"has digits \('"):
        suggest_account(full_name)


@pytest.mark.parametrize(
    ("full_name", "shown"),
    [
        ("Nguyễn Văn An.", "'.'"),
        ("Nguyễn V. An", "'.'"),
        ("O'Neil Mary", "\"'\""),
        ("Trần, Thị Bình", "','"),
        ("Lê_Minh Chí", "'_'"),
        ("Phạm Quang (Bộ Tư pháp)", "'(', ')'"),
    ],
)
def test_punctuation_is_refused(full_name: str, shown: str):
    with pytest.raises(ValueError) as caught:
        suggest_account(full_name)
    assert f"has punctuation or symbols ({shown}); only letters, spaces and hyphens" in str(
        caught.value
    )


def test_a_word_of_hyphens_is_refused():
    with pytest.raises(ValueError, match="a word with no letters: '-'"):
        suggest_account("Nguyễn - An")


def test_letters_without_ascii_form_are_refused():
    with pytest.raises(ValueError, match=r"no ASCII form \('ø'\)"):
        suggest_account("Søren Kierkegaard")


@pytest.mark.parametrize(
    ("pasted", "label", "meant"),
    [
        ("NguyÔn V¨n An", "TCVN3 (ABC)", "Nguyễn Văn An"),
        ("Hµ Néi", "TCVN3 (ABC)", "Hà Nội"),
        ("Nguyeãn Vaên An", "VNI (VNI-Windows)", "Nguyễn Văn An"),
        ("Ñoã Ñöùc Ñaït", "VNI (VNI-Windows)", "Đỗ Đức Đạt"),
    ],
)
def test_legacy_text_is_refused_with_the_likely_name(pasted: str, label: str, meant: str):
    with pytest.raises(ValueError) as caught:
        suggest_account(pasted)
    assert str(caught.value) == (
        f"the full name {pasted!r} looks like {label} text pasted from an old document: "
        f'"{pasted}" is probably "{meant}"; retype it in Unicode (Art. 9)'
    )


def test_soft_hyphen_of_tcvn3_is_reported_as_legacy_not_as_punctuation():
    with pytest.raises(ValueError, match=r"TCVN3 \(ABC\).*is probably \"Bộ Tư pháp\""):
        suggest_account("Bé T\u00ad ph¸p")
