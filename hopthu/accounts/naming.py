"""The ministry's convention for account names: the local part of a mailbox address.

    suggest_account("Nguyễn Văn An")                  # "annv"
    suggest_account("Nguyễn Văn An", taken={"annv"})  # "annv2"

Why this convention. A Vietnamese full name puts the family name first and the given name
last, and the given name is what colleagues call each other by; the family names are few
(Nguyễn, Trần, Lê... cover most of the ministry). So the account name starts with the given
name and ends with the initials of the other words, in order: Nguyễn Văn An is "annv",
Trần Thị Bình "binhtt". A clash with an existing account gets 2, 3... appended ("annv2").

Why ASCII. Mail to a non-ASCII local part needs SMTPUTF8 (RFC 6531) from every server on the
way, and the ministry corresponds with many that lack it; people also type addresses on
keyboards without a Vietnamese layout. So the diacritics go (NFD, combining marks dropped)
and đ, which Unicode does not decompose, becomes d.

What is refused (ValueError, with a message that says why): an empty name; digits, or
punctuation other than the spaces and hyphens that names use; letters with no ASCII form
once their marks are gone (ø, ß, ł...: choose such an account name by hand); and names that
are TCVN3 or VNI text pasted from an old document (hopthu.accounts.legacy), which would
otherwise give an account name built from garbage.

A hyphen joins the parts of one word: the given name "Mai-Anh" gives "maianh", and each part
of another word gives its initial.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from hopthu.accounts.legacy import detect_legacy, legacy_message

__all__ = ["suggest_account"]


def suggest_account(full_name: str, taken: Iterable[str] = ()) -> str:
    """The account name for `full_name` that is not in `taken` (compared ignoring case).

    The given name (the last word), then the initials of the other words, in lower-case
    ASCII; "2", "3"... appended on a clash.
    """
    words = _words(full_name)
    *others, given = [_ascii_parts(word, full_name) for word in words]
    base = "".join(given) + "".join(part[0] for word in others for part in word)
    used = {name.strip().lower() for name in taken}
    if base not in used:
        return base
    number = 2
    while f"{base}{number}" in used:
        number += 1
    return f"{base}{number}"


def _words(full_name: str) -> list[str]:
    """The words of `full_name`, NFC, checked; ValueError if it cannot name an account."""
    name = " ".join(unicodedata.normalize("NFC", full_name).split())
    if not name:
        raise ValueError("the full name is empty: an account name is made from it")
    match = detect_legacy(name)
    if match is not None:
        raise ValueError(f"the full name {name!r} {legacy_message(name, match)}")
    digits = _listed(ch for ch in name if unicodedata.category(ch).startswith("N"))
    if digits:
        raise ValueError(f"the full name {name!r} has digits ({digits}); a name has none")
    others = _listed(
        ch
        for ch in name
        if ch not in " -" and not unicodedata.category(ch).startswith(("L", "M"))
    )
    if others:
        raise ValueError(
            f"the full name {name!r} has punctuation or symbols ({others}); "
            "only letters, spaces and hyphens are allowed"
        )
    return name.split(" ")


def _ascii_parts(word: str, full_name: str) -> list[str]:
    """The hyphen-separated parts of `word`, without diacritics, in lower-case ASCII."""
    parts = [part for part in word.split("-") if part]
    if not parts:
        raise ValueError(f"the full name {full_name!r} has a word with no letters: {word!r}")
    out: list[str] = []
    for part in parts:
        lowered = part.replace("đ", "d").replace("Đ", "D").lower()
        bare = "".join(
            ch for ch in unicodedata.normalize("NFD", lowered) if unicodedata.category(ch) != "Mn"
        )
        foreign = _listed(ch for ch in bare if not ("a" <= ch <= "z"))
        if foreign:
            raise ValueError(
                f"the full name {full_name!r} has letters with no ASCII form ({foreign}); "
                "choose the account name by hand"
            )
        if not bare:
            raise ValueError(f"the full name {full_name!r} has a word with no letters: {word!r}")
        out.append(bare)
    return out


def _listed(chars: Iterable[str]) -> str:
    """The distinct characters of `chars`, in order, quoted and comma-separated."""
    return ", ".join(repr(ch) for ch in dict.fromkeys(chars))
