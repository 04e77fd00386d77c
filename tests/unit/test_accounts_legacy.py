"""hopthu.accounts.legacy finds TCVN3 and VNI text pasted into a name, and nothing else.

The module's tables are checked against encoders written here from other sources, not from
the module: TCVN3 letter by letter, vowel rows as in the VBKey converter (and, where the
controller has it, against glibc's TCVN5712-1 charmap byte by byte), VNI from the xvnkb
converter's VNI-Windows table. Real names and unit names are encoded with them, read as
Windows-1252 the way a paste shows them, and must decode back and be detected; the same names
in Unicode (NFC and NFD), in ASCII, and names in other European languages must not be.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from pathlib import Path

import pytest

from hopthu.accounts.legacy import (
    LegacyMatch,
    decode_tcvn3,
    decode_vni,
    detect_legacy,
    is_vietnamese_syllable,
    legacy_message,
)

# --- Encoders, from sources other than the module ---------------------------------------------

# TCVN3 (TCVN 5712:1993 VN3): each vowel, then the byte of its form with grave, hook above,
# tilde, acute, dot below.
VN3_ROWS: dict[str, tuple[int, int, int, int, int, int]] = {
    "a": (0x61, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9),
    "ă": (0xA8, 0xBB, 0xBC, 0xBD, 0xBE, 0xC6),
    "â": (0xA9, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB),
    "e": (0x65, 0xCC, 0xCE, 0xCF, 0xD0, 0xD1),
    "ê": (0xAA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6),
    "i": (0x69, 0xD7, 0xD8, 0xDC, 0xDD, 0xDE),
    "o": (0x6F, 0xDF, 0xE1, 0xE2, 0xE3, 0xE4),
    "ô": (0xAB, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9),
    "ơ": (0xAC, 0xEA, 0xEB, 0xEC, 0xED, 0xEE),
    "u": (0x75, 0xEF, 0xF1, 0xF2, 0xF3, 0xF4),
    "ư": (0xAD, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9),
    "y": (0x79, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE),
}
VN3_CAPITALS = {"Ă": 0xA1, "Â": 0xA2, "Ê": 0xA3, "Ô": 0xA4, "Ơ": 0xA5, "Ư": 0xA6, "Đ": 0xA7}
VN3_TONES = ("", "\u0300", "\u0309", "\u0303", "\u0301", "\u0323")


def _vn3_encoding() -> dict[str, int]:
    table = {"đ": 0xAE, **VN3_CAPITALS}
    for vowel, codes in VN3_ROWS.items():
        for tone, code in zip(VN3_TONES, codes, strict=True):
            table[unicodedata.normalize("NFC", vowel + tone)] = code
    return table


VN3 = _vn3_encoding()

# VNI-Windows, from the xvnkb converter's table (vni.h): each letter with its forms without
# tone, with acute, grave, hook above, tilde, dot below, then the VNI bytes (as Windows-1252
# shows them) of each.
VNI_ROWS: dict[str, tuple[str, str, str, str, str, str]] = {
    "AÁÀẢÃẠ": ("A", "AÙ", "AØ", "AÛ", "AÕ", "AÏ"),
    "ÂẤẦẨẪẬ": ("AÂ", "AÁ", "AÀ", "AÅ", "AÃ", "AÄ"),
    "ĂẮẰẲẴẶ": ("AÊ", "AÉ", "AÈ", "AÚ", "AÜ", "AË"),
    "EÉÈẺẼẸ": ("E", "EÙ", "EØ", "EÛ", "EÕ", "EÏ"),
    "ÊẾỀỂỄỆ": ("EÂ", "EÁ", "EÀ", "EÅ", "EÃ", "EÄ"),
    "OÓÒỎÕỌ": ("O", "OÙ", "OØ", "OÛ", "OÕ", "OÏ"),
    "ÔỐỒỔỖỘ": ("OÂ", "OÁ", "OÀ", "OÅ", "OÃ", "OÄ"),
    "ƠỚỜỞỠỢ": ("Ô", "ÔÙ", "ÔØ", "ÔÛ", "ÔÕ", "ÔÏ"),
    "UÚÙỦŨỤ": ("U", "UÙ", "UØ", "UÛ", "UÕ", "UÏ"),
    "ƯỨỪỬỮỰ": ("Ö", "ÖÙ", "ÖØ", "ÖÛ", "ÖÕ", "ÖÏ"),
    "IÍÌỈĨỊ": ("I", "Í", "Ì", "Æ", "Ó", "Ò"),
    "YÝỲỶỸỴ": ("Y", "YÙ", "YØ", "YÛ", "YÕ", "Î"),
    "aáàảãạ": ("a", "aù", "aø", "aû", "aõ", "aï"),
    "âấầẩẫậ": ("aâ", "aá", "aà", "aå", "aã", "aä"),
    "ăắằẳẵặ": ("aê", "aé", "aè", "aú", "aü", "aë"),
    "eéèẻẽẹ": ("e", "eù", "eø", "eû", "eõ", "eï"),
    "êếềểễệ": ("eâ", "eá", "eà", "eå", "eã", "eä"),
    "oóòỏõọ": ("o", "où", "oø", "oû", "oõ", "oï"),
    "ôốồổỗộ": ("oâ", "oá", "oà", "oå", "oã", "oä"),
    "ơớờởỡợ": ("ô", "ôù", "ôø", "ôû", "ôõ", "ôï"),
    "uúùủũụ": ("u", "uù", "uø", "uû", "uõ", "uï"),
    "ưứừửữự": ("ö", "öù", "öø", "öû", "öõ", "öï"),
    "iíìỉĩị": ("i", "í", "ì", "æ", "ó", "ò"),
    "yýỳỷỹỵ": ("y", "yù", "yø", "yû", "yõ", "î"),
}
VNI = {"Đ": "Ñ", "đ": "ñ"}
for _letters, _forms in VNI_ROWS.items():
    VNI.update(zip(_letters, _forms, strict=True))


def encode_tcvn3(text: str) -> str:
    """Unicode text typed in a TCVN3 font, as a paste shows it (the bytes read as cp1252).

    TCVN3 has no capital with a tone mark: the writer got the small letter's byte.
    """
    data = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        if ch.isascii():
            data.append(ord(ch))
        elif ch in VN3:
            data.append(VN3[ch])
        else:
            data.append(VN3[ch.lower()])
    return data.decode("cp1252")


def encode_vni(text: str) -> str:
    """Unicode text typed in a VNI font, as a paste shows it (the bytes read as cp1252)."""
    data = "".join(VNI.get(ch, ch) for ch in unicodedata.normalize("NFC", text))
    return data.encode("cp1252").decode("cp1252")  # every VNI byte shows in cp1252


def vn3_case(text: str) -> str:
    """`text` as TCVN3 can hold it: capitals with a tone mark become small letters."""
    return "".join(ch if ch.isascii() or ch in VN3 else ch.lower() for ch in text)


def ascii_fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(
        ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn"
    )


# --- The corpus ------------------------------------------------------------------------------

# Real people's names (historical figures, and common names), in NFC.
NAMES = (
    "Nguyễn Văn An",
    "Trần Thị Bình",
    "Đỗ Đức Đạt",
    "Lê Minh Chí",
    "Phạm Quang",
    "Hoàng Thị Hương",
    "Vũ Đình Khoa",
    "Võ Thị Sáu",
    "Đặng Thùy Trâm",
    "Bùi Xuân Phái",
    "Huỳnh Tấn Phát",
    "Phan Bội Châu",
    "Ngô Bảo Châu",
    "Lý Thường Kiệt",
    "Trịnh Công Sơn",
    "Đinh Tiên Hoàng",
    "Hồ Xuân Hương",
    "Nguyễn Thị Minh Khai",
    "Lương Thế Vinh",
    "Chu Văn An",
    "Tô Ngọc Vân",
    "Mạc Đĩnh Chi",
    "Trương Định",
    "Nguyễn Du",
    "Lê Quý Đôn",
    "Hà Huy Tập",
    "Phùng Khắc Khoan",
    "Tạ Quang Bửu",
    "Đào Duy Từ",
    "Cao Bá Quát",
    "Nguyễn Trãi",
    "Đoàn Thị Điểm",
    "Võ Nguyên Giáp",
    "Nguyễn Thị Ánh Tuyết",
    "Trần Ích Tắc",
    "Lê Văn Hưu",
    "Phạm Ngũ Lão",
    "Nguyễn Khuyến",
    "Huỳnh Thúc Kháng",
    "Trần Hưng Đạo",
    "Nguyễn Thị Định",
    "Hoàng Thị Ý Nhi",
    "Đặng Thái Sơn",
    "Nguyễn Thị Thu Thủy",
    "Lưu Hữu Phước",
    "Dương Quỳnh Hoa",
    "Âu Dương Lân",
    "Ưng Hoàng Phúc",
    "Nguyễn Thị Ngọc Ẩn",
    "Kiều Thanh Quế",
)

# Units of the ministry and of the state, as they are written (sentence case, or capitals).
UNITS = (
    "Bộ Tư pháp",
    "Cục Hộ tịch, quốc tịch, chứng thực",
    "Vụ Pháp luật hình sự - hành chính",
    "Cục Bổ trợ tư pháp",
    "Văn phòng Bộ",
    "Cục Công nghệ thông tin",
    "Tổng cục Thi hành án dân sự",
    "Sở Tư pháp Hà Nội",
    "Học viện Tư pháp",
    "Vụ Tổ chức cán bộ",
    "Cục Kiểm tra văn bản quy phạm pháp luật",
    "Nhà xuất bản Tư pháp",
    "Trường Đại học Luật Hà Nội",
    "Thành phố Hồ Chí Minh",
    "Ủy ban nhân dân tỉnh Quảng Ngãi",
    "BỘ TƯ PHÁP",
    "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
)

CORPUS = NAMES + UNITS

# Names in other languages written with Latin letters and accents: never legacy text.
EUROPEAN = (
    "José Müller",
    "Zoë Ångström",
    "François Côté",
    "Jürgen Kühn",
    "Björn Sørensen",
    "Søren Kierkegaard",
    "Noël Coward",
    "Chloë Grace",
    "Raphaël Varane",
    "Hélène Dupré",
    "Léa Seydoux",
    "René Lévesque",
    "Inês Conceição",
    "João Gonçalves",
    "Ana María Núñez",
    "Begoña Peña",
    "Íñigo Muñoz",
    "Raúl Sánchez",
    "Ángel Díaz",
    "Ödön Hámori",
    "Øyvind Åsheim",
    "Mäkelä Hämäläinen",
    "Loïc Dupont",
    "Anaïs Nin",
    "Eloïse Moïse",
    "Gerd Schäfer",
    "Thérèse Bär",
    "Renée Zellweger",
    "Ærø Ståle",
    "Dvořák Lech Wałęsa",
)

ASCII_NAMES = ("John Smith", "Nguyen Van An", "Tran Thi Binh", "Mary-Jane O'Neil", "Le Minh Chi")


def test_corpus_is_large_enough():
    assert len(NAMES) >= 40
    assert len(set(CORPUS)) == len(CORPUS)
    assert all(unicodedata.is_normalized("NFC", text) for text in CORPUS)


# --- The brief's examples --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pasted", "encoding", "meant"),
    [
        ("Hµ Néi", "TCVN3", "Hà Nội"),
        ("NguyÔn V¨n An", "TCVN3", "Nguyễn Văn An"),
        ("Bé T\u00ad ph¸p", "TCVN3", "Bộ Tư pháp"),
        ("Haø Noäi", "VNI", "Hà Nội"),
        ("Nguyeãn Vaên An", "VNI", "Nguyễn Văn An"),
        # Seen in the wild: converter READMEs and samples.
        ("B¶o Th¾ng", "TCVN3", "Bảo Thắng"),
        # (whose soft hyphens, TCVN3's ư, the copy had lost: put back here)
        ("M\u00adêng Kh\u00ad¬ng", "TCVN3", "Mường Khương"),
        ("B¸t X¸t", "TCVN3", "Bát Xát"),
        ("Xin chaøo caùc baïn", "VNI", "Xin chào các bạn"),
        ("Ñoã Ñöùc Ñaït", "VNI", "Đỗ Đức Đạt"),
    ],
)
def test_known_mojibake_is_detected(pasted: str, encoding: str, meant: str):
    assert detect_legacy(pasted) == LegacyMatch(encoding, meant)  # type: ignore[arg-type]
    decode = decode_tcvn3 if encoding == "TCVN3" else decode_vni
    assert decode(pasted) == meant


def test_the_encoders_reproduce_the_known_mojibake():
    assert encode_tcvn3("Hà Nội") == "Hµ Néi"
    assert encode_tcvn3("Nguyễn Văn An") == "NguyÔn V¨n An"
    assert encode_tcvn3("Bộ Tư pháp") == "Bé T\u00ad ph¸p"
    assert encode_vni("Hà Nội") == "Haø Noäi"
    assert encode_vni("Nguyễn Văn An") == "Nguyeãn Vaên An"


def test_decoders_accept_nfd_input():
    nfd = unicodedata.normalize("NFD", "Hµ Néi")
    assert nfd != "Hµ Néi"
    assert decode_tcvn3(nfd) == "Hà Nội"
    assert detect_legacy(nfd) == LegacyMatch("TCVN3", "Hà Nội")
    assert decode_vni(unicodedata.normalize("NFD", "Haø Noäi")) == "Hà Nội"


# --- The tables, letter by letter ------------------------------------------------------------



def test_vni_table_covers_all_134_letters():
    assert len([ch for ch in VNI if not ch.isascii()]) == 134  # 67 small letters, 67 capitals
    for letter, forms in VNI.items():
        assert decode_vni(forms) == letter, (letter, forms)


def test_tcvn3_table_covers_all_its_letters():
    # 67 small letters, and the 7 capitals Ă Â Ê Ô Ơ Ư Đ.
    non_ascii = {ch: code for ch, code in VN3.items() if code >= 0x80}
    assert len(non_ascii) == 74
    assert len(set(non_ascii.values())) == 74
    for letter, code in non_ascii.items():
        assert decode_tcvn3(bytes([code]).decode("cp1252")) == letter, (letter, hex(code))


def test_tcvn3_capitals_with_tone_marks_read_as_small_letters():
    assert decode_tcvn3(encode_tcvn3("Ánh")) == "ánh"
    assert decode_tcvn3(encode_tcvn3("ĐẠT")) == "ĐạT"  # Đ has a capital in TCVN3, Ạ has not


def test_tcvn3_leaves_unassigned_bytes_alone():
    unassigned = [b for b in range(0xA0, 0x100) if b not in VN3.values()]
    assert len(unassigned) == 256 - 0xA0 - 74
    for byte in unassigned:
        ch = bytes([byte]).decode("latin-1")
        assert decode_tcvn3(ch) == unicodedata.normalize("NFC", ch)


GLIBC_CHARMAP = Path("/usr/share/i18n/charmaps/TCVN5712-1.gz")


@pytest.mark.skipif(not GLIBC_CHARMAP.exists(), reason="glibc's TCVN5712-1 charmap is absent")
def test_tcvn3_table_agrees_with_glibc_charmap():
    with gzip.open(GLIBC_CHARMAP, "rt", encoding="ascii", errors="replace") as charmap:
        lines = re.findall(r"(?m)^<U([0-9A-F]{4})>\s+/x([0-9a-f]{2})\s", charmap.read())
    glibc = {int(byte, 16): chr(int(code, 16)) for code, byte in lines}
    assert len(glibc) > 200
    for code in sorted(set(VN3.values()) - set(range(0x80))):
        assert decode_tcvn3(chr(code)) == glibc[code], hex(code)


def test_vni_capital_with_small_mark_still_reads():
    assert decode_vni("Aùnh") == "Ánh"
    assert decode_vni("AÙnh") == "Ánh"


def test_vni_leaves_a_stray_mark_alone():
    assert decode_vni("Zoë") == "Zoë"  # ë is a mark for a only
    assert decode_vni("Müller") == "Müller"


# --- Round trips over the corpus -------------------------------------------------------------


@pytest.mark.parametrize("text", CORPUS)
def test_tcvn3_round_trip(text: str):
    pasted = encode_tcvn3(text)
    assert pasted != text
    assert decode_tcvn3(pasted) == vn3_case(text)
    assert detect_legacy(pasted) == LegacyMatch("TCVN3", text)


@pytest.mark.parametrize("text", CORPUS)
def test_vni_round_trip(text: str):
    pasted = encode_vni(text)
    assert pasted != text
    assert decode_vni(pasted) == text
    assert detect_legacy(pasted) == LegacyMatch("VNI", text)


def test_round_trip_of_every_letter_in_a_word():
    # Every vowel with every tone, and đ, between consonants: the context a name gives them.
    letters = [letter for row in VNI_ROWS for letter in row if letter.islower()] + ["đ"]
    assert len(letters) == 73
    for letter in letters:
        for word in ("t" + letter + "m", "Nh" + letter + "nh", "kh" + letter):
            assert decode_vni(encode_vni(word)) == word
            assert decode_tcvn3(encode_tcvn3(word)) == word
            assert decode_vni(encode_vni(word.upper())) == word.upper()


# --- What must not be detected ---------------------------------------------------------------


@pytest.mark.parametrize("text", CORPUS)
def test_unicode_vietnamese_is_not_legacy(text: str):
    assert detect_legacy(text) is None
    assert detect_legacy(unicodedata.normalize("NFD", text)) is None


@pytest.mark.parametrize("text", CORPUS + ASCII_NAMES)
def test_ascii_is_not_legacy(text: str):
    assert detect_legacy(ascii_fold(text)) is None


@pytest.mark.parametrize("text", EUROPEAN)
def test_other_latin_languages_are_not_legacy(text: str):
    assert detect_legacy(text) is None
    assert detect_legacy(unicodedata.normalize("NFD", text)) is None


@pytest.mark.parametrize("text", ["", "   ", "Tô Lâm", "Lê Tâm", "Hà Lê", "Võ Thị Sáu"])
def test_latin1_only_vietnamese_is_not_legacy(text: str):
    # ô, â, ê, à... are TCVN3 or VNI bytes too, but the text reads as Vietnamese as it is.
    assert detect_legacy(text) is None


def test_a_name_that_reads_both_ways_is_taken_as_unicode():
    # TCVN3 for "Thanh tra Bộ" (the ministry's inspectorate) is "Thanh tra Bé", which is
    # Vietnamese too ("the small inspector").
    assert encode_tcvn3("Thanh tra Bộ") == "Thanh tra Bé"
    assert detect_legacy("Thanh tra Bé") is None
    # VNI for "Hồ" is "Hoà", itself a common name: with no other word to tell, no alarm.
    assert encode_vni("Hồ Chí Minh") == "Hoà Chí Minh"
    assert detect_legacy("Hoà Chí Minh") is None
    # Another word that cannot be Vietnamese as it stands settles it.
    assert detect_legacy(encode_vni("Thành phố Hồ Chí Minh")) == LegacyMatch(
        "VNI", "Thành phố Hồ Chí Minh"
    )


# --- The message -----------------------------------------------------------------------------


def test_message_tcvn3():
    match = detect_legacy("Hµ Néi")
    assert match is not None
    assert legacy_message("Hµ Néi", match) == (
        'looks like TCVN3 (ABC) text pasted from an old document: "Hµ Néi" is probably '
        '"Hà Nội"; retype it in Unicode (Art. 9)'
    )


def test_message_vni():
    match = detect_legacy("Nguyeãn Vaên An")
    assert match is not None
    assert legacy_message("Nguyeãn Vaên An", match) == (
        'looks like VNI (VNI-Windows) text pasted from an old document: "Nguyeãn Vaên An" is '
        'probably "Nguyễn Văn An"; retype it in Unicode (Art. 9)'
    )


def test_message_spells_out_the_invisible_soft_hyphen():
    text = "Bé T\u00ad ph¸p"
    match = detect_legacy(text)
    assert match == LegacyMatch("TCVN3", "Bộ Tư pháp")
    assert '"Bé T\\u00ad ph¸p" is probably "Bộ Tư pháp"' in legacy_message(text, match)


# --- The syllable checker --------------------------------------------------------------------


@pytest.mark.parametrize(
    "word",
    [
        "a", "An", "Nguyễn", "nguyên", "Quỳnh", "quốc", "gì", "gìn", "giữ", "Nghĩa", "nghiêm",
        "Kiều", "khuya", "khuỷu", "Tuyết", "thuở", "Hoà", "hòa", "Ước", "Ích", "yêu",
        "NGƯỜI", "người", unicodedata.normalize("NFD", "Phước"),
    ],
)  # fmt: skip
def test_vietnamese_syllables(word: str):
    assert is_vietnamese_syllable(word)


@pytest.mark.parametrize(
    "word",
    [
        "", "John", "Smith", "José", "Müller", "Josộ", "Hộlốne", "str", "ka", "ci", "ghá",
        "tàc", "bảp", "bă", "tiê", "aoi", "sáut", "Hµ", "NguyÔn", "Haø", "ngoaøi", "đđ",
        "Frangỗis", "Jỹrgen", "Lộa", "hề1",
        "xoong", "Trònh", "Mờng",  # a loanword; no rhymes onh, ơng
    ],
)  # fmt: skip
def test_not_vietnamese_syllables(word: str):
    assert not is_vietnamese_syllable(word)
