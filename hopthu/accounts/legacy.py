"""Vietnamese text in a legacy 8-bit encoding, pasted into a display name (Decree Art. 9).

Why this exists. Art. 9 wants every name in the directory in Unicode, NFC. Much of the
ministry's paper trail was typed before Unicode, in the TCVN3 (ABC) fonts in the north and the
VNI fonts in the south. Copy a name out of such a document and the bytes arrive read as
Windows-1252 / Latin-1: "Hà Nội" typed in TCVN3 shows as "Hµ Néi", typed in VNI as "Haø Noäi".
Those strings are valid Unicode, so no encoding check stops them, and a directory that accepted
them would show the garbage in every address book and search for ever. So the registry refuses
them, and says what the person most likely meant, so that the operator can retype it.

How a string is judged. `detect_legacy` reads the text as TCVN3 and as VNI and keeps a reading
only when all of these hold:

* nothing in the text is impossible for that encoding: no letter beyond Latin-1 (ộ, ư, ă...,
  which an 8-bit file read as Windows-1252 cannot show), no byte the encoding leaves
  unassigned, and for VNI no tone or vowel mark without a vowel it can sit on;
* the text has characters characteristic of the encoding: a word the reading changes (so it
  holds the encoding's letters) does not read as Vietnamese as it stands, being no syllable
  ("Hµ", "Vaên") or having a capital inside it ("NguyÔn"), and the reading makes it one.
  Unicode Vietnamese that happens to use only Latin-1 letters ("Tô Lâm": ô and â are TCVN3
  bytes too) is left alone;
* the reading yields Vietnamese syllables (`is_vietnamese_syllable`) for at least three in four
  of the words it changes and of all the words.

That is what keeps "José Müller", "Zoë Ångström" and "François Côté" out: their accented
letters either cannot occur in the encoding or decode to strings no Vietnamese syllable has.
When both readings pass, the one that turns more of the changed words into syllables wins,
then the one that changes fewer words that already read as Vietnamese ("Lê Minh Chí" in VNI
is "Leâ Minh Chí": TCVN3 would also turn "Chí" into "Chớ"), then the one that makes more
non-words syllables, then the one with fewer of the rare hook and tilde tones (VNI "Löu Thö"
is "Lưu Thư"; TCVN3 would read "Lửu Thử").

What it cannot see. A string that is a plausible Vietnamese name both as it stands and when
decoded is taken as Unicode: VNI "Hoà" (for "Hồ") is also the common name "Hoà", TCVN3 "Tó"
(for "Tú") and "Thanh tra Bé" (for "Thanh tra Bộ") are Vietnamese too. Most full names have
another word that gives them away; about one two-to-four-word name in fifty does not. The
other way round, a lone "Loïc" reads as VNI "Lọc"; "Loïc Dupont" does not.

TCVN3 has no capitals with a tone mark: a capital Á was the byte of á shown in an all-capitals
font. `decode_tcvn3` returns what the bytes say (lower case); the suggestion of
`detect_legacy` puts the capitals back where the text shows them: a whole text or word in
capitals, the first letter of the text, and the first letter of each word of a name whose
other words all start with a capital.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "LegacyMatch",
    "decode_tcvn3",
    "decode_vni",
    "detect_legacy",
    "is_vietnamese_syllable",
    "legacy_message",
]

Encoding = Literal["TCVN3", "VNI"]


@dataclass(frozen=True)
class LegacyMatch:
    """A name that reads as legacy-encoded text, and the Unicode it most likely meant."""

    encoding: Encoding
    suggestion: str


# --- The tables ------------------------------------------------------------------------------

# TCVN 5712:1993, code table VN3 ("TCVN3", the ABC fonts: .VnTime, .VnArial...). Each byte is
# the key; read as Windows-1252 or Latin-1 it shows as the character U+00xx of the same number
# (the two agree from 0xA0 up). Bytes 0x00-0x7F are ASCII and 0xA0 is the no-break space; VN3
# assigns nothing else: 67 lower-case letters and the 7 capitals Ă Â Ê Ô Ơ Ư Đ. Checked byte
# for byte against glibc's TCVN5712-1 charmap (table VN1, a superset that puts the other
# capitals in the gaps left here) and the VBKey converter's TCVN3 table.
_TCVN3_BYTES: dict[int, str] = {
    0xA1: "Ă", 0xA2: "Â", 0xA3: "Ê", 0xA4: "Ô", 0xA5: "Ơ", 0xA6: "Ư", 0xA7: "Đ",
    0xA8: "ă", 0xA9: "â", 0xAA: "ê", 0xAB: "ô", 0xAC: "ơ", 0xAD: "ư", 0xAE: "đ",
    0xB5: "à", 0xB6: "ả", 0xB7: "ã", 0xB8: "á", 0xB9: "ạ",
    0xBB: "ằ", 0xBC: "ẳ", 0xBD: "ẵ", 0xBE: "ắ",
    0xC6: "ặ", 0xC7: "ầ", 0xC8: "ẩ", 0xC9: "ẫ", 0xCA: "ấ", 0xCB: "ậ",
    0xCC: "è", 0xCE: "ẻ", 0xCF: "ẽ", 0xD0: "é", 0xD1: "ẹ",
    0xD2: "ề", 0xD3: "ể", 0xD4: "ễ", 0xD5: "ế", 0xD6: "ệ",
    0xD7: "ì", 0xD8: "ỉ", 0xDC: "ĩ", 0xDD: "í", 0xDE: "ị",
    0xDF: "ò", 0xE1: "ỏ", 0xE2: "õ", 0xE3: "ó", 0xE4: "ọ",
    0xE5: "ồ", 0xE6: "ổ", 0xE7: "ỗ", 0xE8: "ố", 0xE9: "ộ",
    0xEA: "ờ", 0xEB: "ở", 0xEC: "ỡ", 0xED: "ớ", 0xEE: "ợ",
    0xEF: "ù", 0xF1: "ủ", 0xF2: "ũ", 0xF3: "ú", 0xF4: "ụ",
    0xF5: "ừ", 0xF6: "ử", 0xF7: "ữ", 0xF8: "ứ", 0xF9: "ự",
    0xFA: "ỳ", 0xFB: "ỷ", 0xFC: "ỹ", 0xFD: "ý", 0xFE: "ỵ",
}  # fmt: skip

# VNI-Windows (VNI Software's 8-bit fonts: VNI-Times, VNI-Helve...). A vowel is its ASCII
# letter followed by one mark byte; ơ, ư, đ and the toned i have a byte of their own, and so
# has ỵ. Each row: the letter without a tone mark, then with acute, grave, hook above, tilde,
# dot below; lower case, as read in Windows-1252 / Latin-1. A capital is the same sequence in
# capitals: every byte used here has its capital 0x20 below it, ù 0xF9 / Ù 0xD9, so
# str.upper() gives it ("aù" á, "AÙ" Á; "ô" ơ, "Ô" Ơ). Checked against the VNI-Windows tables
# of two converters, xvnkb (vni.h) and VBKey, which agree on all 134 letters.
_VNI_ROWS: dict[str, tuple[str, str, str, str, str, str]] = {
    "a": ("a", "aù", "aø", "aû", "aõ", "aï"),
    "ă": ("aê", "aé", "aè", "aú", "aü", "aë"),
    "â": ("aâ", "aá", "aà", "aå", "aã", "aä"),
    "e": ("e", "eù", "eø", "eû", "eõ", "eï"),
    "ê": ("eâ", "eá", "eà", "eå", "eã", "eä"),
    "i": ("i", "í", "ì", "æ", "ó", "ò"),
    "o": ("o", "où", "oø", "oû", "oõ", "oï"),
    "ô": ("oâ", "oá", "oà", "oå", "oã", "oä"),
    "ơ": ("ô", "ôù", "ôø", "ôû", "ôõ", "ôï"),
    "u": ("u", "uù", "uø", "uû", "uõ", "uï"),
    "ư": ("ö", "öù", "öø", "öû", "öõ", "öï"),
    "y": ("y", "yù", "yø", "yû", "yõ", "î"),
}
_VNI_D = ("ñ", "đ")  # and "Ñ" for Đ

# The tone marks, in the order of the rows above: none, acute, grave, hook above, tilde, dot.
_TONES = ("", "\u0301", "\u0300", "\u0309", "\u0303", "\u0323")


def _tcvn3_table() -> dict[str, str]:
    return {chr(byte): letter for byte, letter in _TCVN3_BYTES.items()}


def _vni_tables() -> tuple[dict[str, str], dict[str, str]]:
    """The VNI sequences of two characters (letter and mark) and of one, each to its letter."""
    pairs: dict[str, str] = {}
    singles: dict[str, str] = {}
    for letter, forms in _VNI_ROWS.items():
        for tone, seq in zip(_TONES, forms, strict=True):
            unicode = unicodedata.normalize("NFC", letter + tone)
            if len(seq) == 2:
                pairs[seq] = unicode
                pairs[seq.upper()] = unicode.upper()
                # A capital with the small mark: not what VNI's keyboard driver typed, but
                # nothing else reads that way, and some converters wrote it.
                pairs[seq[0].upper() + seq[1]] = unicode.upper()
            elif not seq.isascii():
                singles[seq] = unicode
                singles[seq.upper()] = unicode.upper()
    singles[_VNI_D[0]] = _VNI_D[1]
    singles[_VNI_D[0].upper()] = _VNI_D[1].upper()
    return pairs, singles


_TCVN3 = _tcvn3_table()
_VNI_PAIRS, _VNI_SINGLES = _vni_tables()

# Characters beyond Latin-1 that Windows-1252 shows for bytes 0x80-0x9F and that a name may
# carry as punctuation whatever its encoding. Any other character beyond U+00FF (ộ, ư, ă, a
# combining mark...) cannot come from 8-bit text: the text is Unicode already.
_NEUTRAL = frozenset("\u2018\u2019\u201c\u201d\u2013\u2014\u2026")


# --- Decoding --------------------------------------------------------------------------------


def _decode_tcvn3(text: str) -> tuple[str, int]:
    """`text` read as TCVN3, and how many of its characters TCVN3 cannot have produced."""
    out: list[str] = []
    impossible = 0
    for ch in text:
        letter = _TCVN3.get(ch)
        if letter is not None:
            out.append(letter)
            continue
        if _impossible(ch):
            impossible += 1
        out.append(ch)
    return "".join(out), impossible


def _decode_vni(text: str) -> tuple[str, int]:
    """`text` read as VNI, and how many of its characters VNI cannot have produced."""
    out: list[str] = []
    impossible = 0
    i = 0
    while i < len(text):
        pair = _VNI_PAIRS.get(text[i : i + 2])
        if pair is not None:
            out.append(pair)
            i += 2
            continue
        ch = text[i]
        single = _VNI_SINGLES.get(ch)
        if single is not None:
            out.append(single)
        else:
            if _impossible(ch):
                impossible += 1
            out.append(ch)
        i += 1
    return "".join(out), impossible


def _impossible(ch: str) -> bool:
    """Whether `ch`, left over by a decoder, shows the text is not in that legacy encoding."""
    if ch == "\u00a0" or ch in _NEUTRAL:
        return False
    return ord(ch) >= 0x80


def decode_tcvn3(text: str) -> str:
    """`text`, as it shows read as Windows-1252 or Latin-1, read as TCVN3 (VN3); NFC Unicode.

    Characters TCVN3 does not assign are kept as they are. Capitals with a tone mark come out
    in lower case: TCVN3 has none (see the module's docstring).
    """
    decoded, _ = _decode_tcvn3(unicodedata.normalize("NFC", text))
    return unicodedata.normalize("NFC", decoded)


def decode_vni(text: str) -> str:
    """`text`, as it shows read as Windows-1252 or Latin-1, read as VNI-Windows; NFC Unicode.

    A mark that follows no letter it can go with is kept as it is.
    """
    decoded, _ = _decode_vni(unicodedata.normalize("NFC", text))
    return unicodedata.normalize("NFC", decoded)


# --- Vietnamese syllables --------------------------------------------------------------------

_ACUTE, _GRAVE, _HOOK, _TILDE, _DOT = "\u0301", "\u0300", "\u0309", "\u0303", "\u0323"
_TONE_MARKS = frozenset((_ACUTE, _GRAVE, _HOOK, _TILDE, _DOT))
_LETTERS = frozenset("abcdeghiklmnopqrstuvxyăâđêôơư")
# Longest first, so that "ngh" is tried before "ng" and "n"; "" for a syllable without one.
_INITIALS = (
    "ngh", "ch", "gh", "gi", "kh", "ng", "nh", "ph", "qu", "th", "tr",
    "b", "c", "d", "đ", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "x", "",
)  # fmt: skip
_FINALS = ("ch", "ng", "nh", "c", "m", "n", "p", "t", "")
_STOPS = frozenset(("c", "ch", "p", "t"))  # after these only the acute and the dot below
# Vowel groups that end in a glide (i, y, o, u) or are a closing diphthong: no final after them.
_OPEN_NUCLEI = frozenset((
    "ai", "ao", "au", "ay", "âu", "ây", "eo", "êu", "ia", "iu", "oi", "ôi", "ơi", "ua", "ui",
    "ưa", "ưi", "ưu", "iêu", "yêu", "oai", "oay", "oeo", "uây", "uôi", "ươi", "ươu", "uya",
    "uyu",
))  # fmt: skip
# Vowel groups that never end a syllable: a final must follow.
_CLOSED_NUCLEI = frozenset(("ă", "â", "iê", "yê", "uô", "ươ", "oă", "uâ", "uyê"))
_NUCLEI = (
    frozenset(("a", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y"))
    | frozenset(("oa", "oe", "uê", "uơ", "uy"))
    | _OPEN_NUCLEI
    | _CLOSED_NUCLEI
)
_FRONT = frozenset("ieêy")
# ch and nh close only a syllable whose vowel ends in a, ê, i or y (anh, ếch, ính, oanh, uých).
_PALATAL_AFTER = frozenset("aêiy")


def is_vietnamese_syllable(word: str) -> bool:
    """Whether `word` (any case, NFC or NFD) is spelled like a Vietnamese syllable.

    An initial consonant from the Vietnamese set (or none), a vowel group with at most one
    tone mark, and a final from c, ch, m, n, ng, nh, p, t (or none); with the rules that keep
    most non-words out: k, gh and ngh only before i, e, ê, y and c never there; no o or u
    after qu; no final after a glide, one always after ă, â, iê, uô, ươ; ch and nh only after
    a, ê, i, y; only the acute or the dot below before a final c, ch, p or t; and the tone
    mark on the vowel that carries it (tài, not taì; both hòa and hoà, thủy and thuỷ). Loanword
    rhymes (xoong, soóc) are not Vietnamese syllables here.
    """
    letters: list[str] = []
    tone, tone_at = "", -1
    for ch in unicodedata.normalize("NFD", word.lower()):
        if ch in _TONE_MARKS:
            if tone or not letters:
                return False
            tone, tone_at = ch, len(letters) - 1
        elif unicodedata.combining(ch):
            if not letters:
                return False
            letters[-1] = unicodedata.normalize("NFC", letters[-1] + ch)
        else:
            letters.append(ch)
    bare = "".join(letters)
    if not bare or not all(ch in _LETTERS for ch in bare):
        return False
    for initial in _INITIALS:
        if not bare.startswith(initial):
            continue
        rest = bare[len(initial) :]
        for final in _FINALS:
            if not rest.endswith(final):
                continue
            nucleus, start = rest[: len(rest) - len(final)], len(initial)
            if initial == "gi" and not nucleus:
                nucleus, start = "i", 1  # gì, gìn: the i of gi is the vowel too
            if not _rhyme_ok(initial, nucleus, final, tone):
                continue
            if not tone or tone_at - start in _tone_places(nucleus, final):
                return True
    return False


def _rhyme_ok(initial: str, nucleus: str, final: str, tone: str) -> bool:
    if nucleus not in _NUCLEI:
        return False
    if final and nucleus in _OPEN_NUCLEI:
        return False
    if not final and nucleus in _CLOSED_NUCLEI:
        return False
    if final in _STOPS and tone not in (_ACUTE, _DOT):
        return False
    if final in ("ch", "nh") and nucleus[-1] not in _PALATAL_AFTER:
        return False
    if nucleus == "ơ" and final in ("c", "ng"):
        return False  # no Vietnamese rhyme ơc or ơng
    if initial in ("k", "gh", "ngh") and nucleus[0] not in _FRONT:
        return False
    if initial == "qu" and nucleus[0] in "ouư":
        return False
    return not (initial == "c" and nucleus[0] in _FRONT)


def _tone_places(nucleus: str, final: str) -> frozenset[int]:
    """Where in `nucleus` the tone mark may sit: the old placement and the new one."""
    marked = [index for index, ch in enumerate(nucleus) if ch in "ăâêôơư"]
    if marked:
        return frozenset((marked[-1],))  # ươ: on the ơ
    if len(nucleus) == 1 or final:
        return frozenset((len(nucleus) - 1,))  # hoàn, toán, huých
    if nucleus in ("oa", "oe", "uy"):
        return frozenset((0, 1))  # hòa and hoà, thủy and thuỷ
    if len(nucleus) == 3:
        return frozenset((1,))  # ngoài, xoáy, khuỷu, ngoẹo
    return frozenset((0,))  # tài, cháu, mía, của


def _reads_as_word(word: str) -> bool:
    """Whether `word` reads as Vietnamese as it stands: a syllable, in one case or Title case."""
    if not (word.islower() or word.isupper() or word[:1].isupper() and word[1:].islower()):
        return False
    return is_vietnamese_syllable(word)


def _rare_tones(word: str) -> int:
    """How many hook-above and tilde tones `word` has: the rarest two of Vietnamese's six."""
    return sum(ch in (_HOOK, _TILDE) for ch in unicodedata.normalize("NFD", word))


# --- Detection -------------------------------------------------------------------------------

# What separates the words of a name or a unit's name. None of these is a byte that TCVN3 or
# VNI uses for a letter, so a word decodes the same alone as inside the text.
_SEPARATORS = re.compile(r"([\s\-\u2013\u2014.,;:()/\"'\u2018\u2019\u201c\u201d]+)")


@dataclass(frozen=True)
class _Reading:
    encoding: Encoding
    suggestion: str
    # Better first: the share of changed words that become syllables, then fewer syllables
    # changed into other syllables, then more non-words changed into syllables, then fewer of
    # the rare tones.
    rank: tuple[float, int, int, int]


def detect_legacy(text: str) -> LegacyMatch | None:
    """Whether `text` is TCVN3 or VNI text read as Windows-1252 / Latin-1; None if it is not.

    None for Unicode Vietnamese (NFC or NFD), for ASCII and for names in other languages; see
    the module's docstring for how the decision is made.
    """
    normal = unicodedata.normalize("NFC", text).strip()
    if not normal or normal.isascii():
        return None
    if any(ord(ch) > 0xFF and ch not in _NEUTRAL for ch in normal):
        return None  # letters no 8-bit text read as Windows-1252 shows: Unicode already
    parts = _SEPARATORS.split(normal)
    words = parts[0::2]
    accented = [word for word in words if not word.isascii()]
    if all(_reads_as_word(word) for word in accented):
        return None  # reads as Vietnamese as it stands
    readings = [
        reading
        for reading in (_read(parts, "TCVN3"), _read(parts, "VNI"))
        if reading is not None
    ]
    if not readings:
        return None
    best = max(readings, key=lambda reading: reading.rank)
    return LegacyMatch(best.encoding, best.suggestion)


def _read(parts: list[str], encoding: Encoding) -> _Reading | None:
    """The reading of a text split by `_SEPARATORS` in `encoding`, if it is a plausible one."""
    decode = _decode_tcvn3 if encoding == "TCVN3" else _decode_vni
    words = parts[0::2]
    decoded: list[str] = []
    changed = valid_changed = counted = valid = telling = needless = rare = 0
    for word in words:
        reading, impossible = decode(word)
        if impossible:
            return None
        decoded.append(reading)
        ok = is_vietnamese_syllable(reading)
        if reading != word:
            changed += 1
            valid_changed += ok
            already = _reads_as_word(word)
            telling += ok and not already
            needless += already
            rare += _rare_tones(reading)
        if len(word) > 1 or not word.isascii():  # an initial such as "V" is not a word
            counted += 1
            valid += ok
    if not changed or not telling:
        return None
    if valid_changed < 0.75 * changed or valid < 0.75 * counted:
        return None
    if encoding == "TCVN3":
        decoded = _tcvn3_capitals(words, decoded)
    out = list(parts)
    out[0::2] = decoded
    suggestion = unicodedata.normalize("NFC", "".join(out))
    rank = (valid_changed / changed, -needless, telling, -rare)
    return _Reading(encoding, suggestion, rank)


# TCVN3 bytes that stand for a capital, and for the small letter of a letter that has a
# capital in TCVN3 (so that a writer who used it meant the small one).
_TCVN3_CAPITALS = frozenset(chr(byte) for byte in range(0xA1, 0xA8))
_TCVN3_SMALL = frozenset(chr(byte) for byte in range(0xA8, 0xAF))
# The small letters with a tone mark, whose capitals TCVN3 lacks.
_TCVN3_TONED = frozenset(_TCVN3) - _TCVN3_CAPITALS - _TCVN3_SMALL


def _is_capital(ch: str) -> bool:
    return (ch.isascii() and ch.isupper()) or ch in _TCVN3_CAPITALS


def _is_small(ch: str) -> bool:
    return (ch.isascii() and ch.islower()) or ch in _TCVN3_SMALL


def _tcvn3_capitals(words: list[str], decoded: list[str]) -> list[str]:
    """`decoded` with the capitals TCVN3 could not write put back (see the module's docstring).

    Only the case the text shows for certain counts: ASCII letters and the TCVN3 bytes of
    Ă Â Ê Ô Ơ Ư Đ and of their small letters. A toned byte says nothing about case.
    """
    capitals = [sum(map(_is_capital, word)) for word in words]
    smalls = [sum(map(_is_small, word)) for word in words]
    if sum(smalls) == 0 and max(capitals, default=0) >= 2:
        return [reading.upper() for reading in decoded]  # the whole text is in capitals
    # A name whose words all start with a capital, as far as their first letters show.
    shown = [_is_capital(word[0]) for word in words if word[:1] and word[0] not in _TCVN3_TONED]
    titled = bool(shown) and all(shown)
    first = next((index for index, word in enumerate(words) if word), None)
    out: list[str] = []
    for index, (word, reading) in enumerate(zip(words, decoded, strict=True)):
        if smalls[index] == 0 and capitals[index] >= 2:
            out.append(reading.upper())
        elif word[:1] in _TCVN3_TONED and (titled or index == first):
            out.append(reading[0].upper() + reading[1:])
        else:
            out.append(reading)
    return out


# --- The message -----------------------------------------------------------------------------

_LABELS: dict[str, str] = {"TCVN3": "TCVN3 (ABC)", "VNI": "VNI (VNI-Windows)"}


def legacy_message(text: str, match: LegacyMatch) -> str:
    """One sentence for the operator: what `text` looks like and what to type instead."""
    return (
        f"looks like {_LABELS[match.encoding]} text pasted from an old document: "
        f'"{_visible(text)}" is probably "{match.suggestion}"; retype it in Unicode (Art. 9)'
    )


def _visible(text: str) -> str:
    """`text` with invisible characters (TCVN3's ư is the soft hyphen, 0xAD) spelt out."""
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text
    )
