"""The ministry's e-mail directory (danh bạ thư điện tử), built from the account registry.

The decree (Art. 5) asks for a directory every official can consult. It is
made from the registry, never typed by hand, so it cannot drift from the
mailboxes that really exist. `build` writes it in four formats, each for a
reader that already exists in the ministry:

* ``index.html``: one self-contained page for a browser (intranet server,
  shared drive or an attachment). It has no external resources (styles and
  script are inline, pinned by a Content-Security-Policy hash), so it works
  offline and leaks nothing to a third party. Rows are grouped by unit; a
  search box filters them in the browser, ignoring accents, so "nguyen" finds
  "Nguyễn" and "dao" finds "Đào" (people often type without Telex/VNI).
* ``directory.csv``: for Excel, with a UTF-8 byte order mark (see
  `render_csv` for why).
* ``directory.vcf``: vCard 4.0 (RFC 6350), to import into a phone or a mail
  client's address book.
* ``directory.ldif``: LDIF (RFC 2849), to load into an LDAP server that mail
  clients (Thunderbird, Outlook) query for address completion.

Only ``active`` entries appear: a disabled or archived mailbox is not an
address anyone should write to. All four files list the entries in the same
order: units in Vietnamese alphabetical order; within a unit, the unit's own
mailboxes, then people, then aliases.

Choices, and why:

* **Collation.** Python's ``sorted`` orders by code point, which puts "Đ"
  (U+0110) after "Z" and "Ă" after every plain letter. The order here is the
  one Vietnamese readers expect, implemented without ICU (`vietnamese_key`):
  Unicode CLDR's ``vi`` "standard" collation (common/collation/vi.xml, as in
  ICU's data/coll/vi.txt)::

      &̀<<̉<<̃<<́<<̣          tones, secondary: ngang < huyền < hỏi < ngã < sắc < nặng
      &a<ă<<<Ă<â<<<Â          letters, primary
      &d<đ<<<Đ
      &e<ê<<<Ê
      &o<ô<<<Ô<ơ<<<Ơ
      &u<ư<<<Ư

  That is the alphabet a ă â b c d đ e ê g h i k l m n o ô ơ p q r s t u ư v
  x y, with f j w z in their Latin places for foreign names, and the tone
  order of Vietnamese dictionaries (Hoàng Phê, Từ điển tiếng Việt: a à ả ã á
  ạ). Levels as in the Unicode Collation Algorithm (UTS #10): letters first
  (tones ignored), then tones, then case (lower case first, CLDR's default),
  and last the code points, so that two different strings never tie and the
  output is the same on every run. Words are compared one by one: "An" <
  "Anh" < "Ăn" < "Ân" < "Ấn" < "Bình". CLDR's "traditional" variant, which
  treats ch, gh, kh, ng, nh, ph, th, tr as single letters, is not used: the
  29-letter order is the one taught in school and used by current
  dictionaries.
* **People.** A Vietnamese directory is ordered by given name, which comes
  last ("Trần Văn An" is Mr An), then by the whole name from the start
  (`sort_people`).
* **Identifiers.** A vCard's UID is a UUIDv5 of ``mailto:<address>``, and
  an LDAP entry's DN is ``mail=<address>,ou=directory,dc=moj,dc=gov,dc=vn``:
  the address is the one key that is unique and that a reorganisation does
  not change (unit names do, and they hold commas).
* **Determinism.** The output depends only on the entries, the title and the
  ``generated`` text: the same registry gives byte-identical files, so a
  deploy can tell whether anything changed. Files are replaced atomically, so
  a web server never serves half a page.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import os
import tempfile
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

Entry = Mapping[str, Any]
SortKey = tuple[Any, ...]

KINDS = ("personal", "unit", "alias")
STATES = ("active", "disabled", "archived")

#: How each kind is shown: Vietnamese label, English title attribute.
KIND_LABELS: dict[str, tuple[str, str]] = {
    "personal": ("Cá nhân", "Personal mailbox"),
    "unit": ("Hộp thư đơn vị", "Unit mailbox"),
    "alias": ("Bí danh", "Alias"),
}

#: The organisation every unit belongs to: the first component of vCard ORG.
MINISTRY = "Bộ Tư pháp"
DEFAULT_TITLE = "Danh bạ thư điện tử Bộ Tư pháp"
#: Where the LDIF's entries live; this entry must exist on the server first.
BASE_DN = "ou=directory,dc=moj,dc=gov,dc=vn"

FILES = {
    "html": "index.html",
    "csv": "directory.csv",
    "vcf": "directory.vcf",
    "ldif": "directory.ldif",
}

CSV_HEADER = ("unit", "display_name", "address", "kind")

# --- Vietnamese collation -----------------------------------------------------

#: The primary alphabet: Vietnamese letters, f j w z in their Latin places.
_ALPHABET = "aăâbcdđeêfghijklmnoôơpqrstuưvwxyz"
_LETTER_WEIGHT = {letter: i for i, letter in enumerate(_ALPHABET)}

#: Marks that make another letter (primary), after NFD: breve, circumflex, horn.
_LETTER_MARKS = {
    ("a", "\u0306"): "ă",
    ("a", "\u0302"): "â",
    ("e", "\u0302"): "ê",
    ("o", "\u0302"): "ô",
    ("o", "\u031b"): "ơ",
    ("u", "\u031b"): "ư",
}

#: Tone marks (secondary), in CLDR vi order; 0 is ngang (no mark).
_TONES = {
    "\u0300": 1,  # huyền (grave)
    "\u0309": 2,  # hỏi (hook above)
    "\u0303": 3,  # ngã (tilde)
    "\u0301": 4,  # sắc (acute)
    "\u0323": 5,  # nặng (dot below)
}

# Primary weight classes, as in CLDR root: punctuation and symbols, then
# digits, then letters of the alphabet above, then any other letter.
_CLASS = 1 << 21  # above every code point
_PUNCT, _DIGIT, _LETTER, _OTHER = (c * _CLASS for c in range(4))


def _clusters(text: str) -> list[tuple[str, str]]:
    """``text`` in NFD as (base character, the combining marks that follow it)."""
    out: list[tuple[str, str]] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch) and out:
            base, marks = out[-1]
            out[-1] = (base, marks + ch)
        else:
            out.append((ch, ""))
    return out


def _weights(base: str, marks: str) -> tuple[int, tuple[int, tuple[int, ...]], int]:
    """The (primary, secondary, tertiary) weights of one character and its marks."""
    lower = base.lower()
    if len(lower) != 1:  # "İ".lower() is two characters
        lower = base
    letter = lower
    rest = marks
    for mark in marks:
        made = _LETTER_MARKS.get((lower, mark))
        if made is not None:
            letter = made
            rest = rest.replace(mark, "", 1)
            break
    if letter in _LETTER_WEIGHT:
        primary = _LETTER + _LETTER_WEIGHT[letter]
    elif base.isdigit():
        primary = _DIGIT + unicodedata.digit(base, 0) * 0x10000 + ord(base) % 0x10000
    elif base.isalpha():
        primary = _OTHER + ord(lower)
    else:
        primary = _PUNCT + ord(base)
    tone = 0
    others: list[int] = []
    for mark in rest:
        if mark in _TONES and tone == 0:
            tone = _TONES[mark]
        else:
            others.append(ord(mark))
    tertiary = 1 if base != lower else 0
    return primary, (tone, tuple(others)), tertiary


def vietnamese_key(text: str) -> SortKey:
    """A sort key for ``text`` in Vietnamese alphabetical order (CLDR ``vi``).

    The key is (letters, tones, case, NFC text), compared in that order, as
    the levels of UTS #10. Each of the first three is a tuple with one tuple
    per word, so names compare word by word: "An" < "An Bình" < "Anh" (a whole
    word that is a prefix comes first). Tones only decide between names with
    the same letters ("Anh" < "Ánh" < "Ăn", since ă > a outweighs any tone),
    case only between names with the same letters and tones ("an" < "An"),
    and the code points last, so two distinct strings never tie. The text is
    decomposed (NFD) first, so precomposed and combining-mark input agree.
    """
    words = [_clusters(word) for word in text.split()]
    primary: list[tuple[int, ...]] = []
    secondary: list[tuple[tuple[int, tuple[int, ...]], ...]] = []
    tertiary: list[tuple[int, ...]] = []
    for word in words:
        weights = [_weights(base, marks) for base, marks in word]
        primary.append(tuple(w[0] for w in weights))
        secondary.append(tuple(w[1] for w in weights))
        tertiary.append(tuple(w[2] for w in weights))
    return (
        tuple(primary),
        tuple(secondary),
        tuple(tertiary),
        unicodedata.normalize("NFC", text),
    )


def name_parts(display_name: str) -> tuple[str, str, str]:
    """A Vietnamese personal name as (family, middle, given): "Nguyễn Thị Minh Khai"
    is ("Nguyễn", "Thị Minh", "Khai"). A one-word name is a given name only."""
    words = display_name.split()
    if not words:
        return "", "", ""
    if len(words) == 1:
        return "", "", words[0]
    return words[0], " ".join(words[1:-1]), words[-1]


def person_key(display_name: str) -> SortKey:
    """Given name (the last word) first, then the whole name from the start."""
    return (vietnamese_key(name_parts(display_name)[2]), vietnamese_key(display_name))


def sort_people(entries: Iterable[Entry]) -> list[Entry]:
    """``entries`` ordered as a Vietnamese directory lists people: by given name,
    then by the full name ("Lê Văn An" < "Nguyễn Văn An" < "Trần Văn An" <
    "Nguyễn Thị Bình"), then by address so that namesakes keep one order."""
    return sorted(entries, key=lambda e: (person_key(e["display_name"]), str(e.get("address", ""))))


def search_fold(text: str) -> str:
    """``text`` as the page's search compares it: no accents or tones, đ as d,
    lower case. The page's script folds what the reader types the same way."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M"))
    return bare.lower().replace("đ", "d")


# --- the entries ----------------------------------------------------------------


def _check(entries: Sequence[Entry]) -> list[Entry]:
    """The active entries, each checked; ValueError names the first bad one."""
    active: list[Entry] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        where = f"registry entry {n} ({entry.get('address', '?')!s})"
        state = entry.get("state")
        if state not in STATES:
            raise ValueError(f"{where}: state {state!r} is not one of {', '.join(STATES)}")
        if state != "active":
            continue
        for key in ("address", "kind", "display_name", "unit"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{where}: {key} must be a non-empty string")
            if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in value):
                raise ValueError(f"{where}: {key} holds a control character")
        if entry["kind"] not in KINDS:
            raise ValueError(f"{where}: kind {entry['kind']!r} is not one of {', '.join(KINDS)}")
        address = entry["address"]
        local, _, domain = address.rpartition("@")
        if (
            not local
            or not domain
            or "@" in local
            or any(ch.isspace() or ch in '<>"' for ch in address)
        ):
            raise ValueError(f"{where}: address {address!r} is not local@domain")
        for key in ("display_name", "unit"):
            # A cell that starts with one of these is run as a formula by Excel
            # when the CSV is opened (CSV injection).
            if entry[key].lstrip()[:1] in ("=", "+", "-", "@"):
                raise ValueError(f"{where}: {key} must not start with = + - or @")
        staff_id = entry.get("staff_id")
        if staff_id is not None and not isinstance(staff_id, str):
            raise ValueError(f"{where}: staff_id must be a string")
        if address.lower() in seen:
            raise ValueError(f"{where}: address {address} is listed twice")
        seen.add(address.lower())
        active.append(entry)
    return active


def ordered(entries: Sequence[Entry]) -> list[Entry]:
    """The active entries in directory order: units in Vietnamese order; in a
    unit, its unit mailboxes, then people (`sort_people`), then aliases."""
    by_unit: dict[str, list[Entry]] = {}
    for entry in _check(entries):
        by_unit.setdefault(entry["unit"], []).append(entry)
    out: list[Entry] = []
    for unit in sorted(by_unit, key=vietnamese_key):
        members = by_unit[unit]

        def named(kind: str, members: list[Entry] = members) -> list[Entry]:
            return sorted(
                (e for e in members if e["kind"] == kind),
                key=lambda e: (vietnamese_key(e["display_name"]), e["address"]),
            )

        out += named("unit")
        out += sort_people(e for e in members if e["kind"] == "personal")
        out += named("alias")
    return out


# --- HTML -------------------------------------------------------------------------

_CSS = """\
:root { color-scheme: light dark; --line: #8884; --muted: #666; }
* { box-sizing: border-box; }
body { font: 16px/1.45 system-ui, "Segoe UI", Roboto, Arial, sans-serif;
  margin: 0 auto; max-width: 60rem; padding: 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .25rem; }
#search label { display: block; font-weight: 600; margin-bottom: .25rem; }
#search input { font: inherit; width: 100%; max-width: 30rem; padding: .4rem .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-size: .85rem; }
td.kind { white-space: nowrap; color: var(--muted); }
a { overflow-wrap: anywhere; }
footer { margin-top: 2rem; font-size: .85rem; color: var(--muted); }
[hidden] { display: none !important; }
@media print { #search, #no-result { display: none !important; } }
"""

# Folds exactly as search_fold does: NFD, drop marks (\\p{M}), lower case, đ -> d.
# Every word typed must occur in the row (name, address or unit).
_JS = """\
(function () {
  "use strict";
  function fold(s) {
    return s.normalize("NFD").replace(/\\p{M}/gu, "").toLowerCase().replace(/\\u0111/g, "d");
  }
  var box = document.getElementById("search");
  var input = document.getElementById("q");
  var none = document.getElementById("no-result");
  var groups = Array.prototype.slice.call(document.querySelectorAll("section.unit"));
  function filter() {
    var terms = fold(input.value).split(/\\s+/).filter(Boolean);
    var shown = 0;
    groups.forEach(function (group) {
      var inGroup = 0;
      group.querySelectorAll("tbody tr").forEach(function (row) {
        var text = row.getAttribute("data-search");
        var hit = terms.every(function (t) { return text.indexOf(t) !== -1; });
        row.hidden = !hit;
        if (hit) { inGroup += 1; }
      });
      group.hidden = inGroup === 0;
      shown += inGroup;
    });
    none.hidden = shown !== 0 || terms.length === 0;
  }
  box.hidden = false;
  input.addEventListener("input", filter);
  filter();
})();
"""


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _mailto(address: str) -> str:
    """A mailto: URI (RFC 6068): characters that mean something in a URI
    (% ? # & / = ...) and non-ASCII ones are percent-encoded."""
    return "mailto:" + quote(address, safe="@!$'()*+,;:-._~")


def render_html(rows: Sequence[Entry], *, title: str, generated: str) -> bytes:
    """The directory page for ``rows`` (already in directory order)."""
    esc = html.escape
    csp = (
        "default-src 'none'; "
        f"style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
        "base-uri 'none'; form-action 'none'"
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="vi">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # An internal directory: keep it out of search engines, and send no
        # Referer when a link is followed.
        '<meta name="robots" content="noindex, nofollow">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{esc(title)}</h1>",
        # Shown by the script: without JavaScript the box could do nothing.
        '<div id="search" role="search" hidden>',
        '<label for="q">Tìm kiếm <span lang="en">(Search)</span></label>',
        (
            '<input type="search" id="q" autocomplete="off" spellcheck="false"'
            ' placeholder="Họ tên, địa chỉ, đơn vị / Name, address, unit">'
        ),
        "</div>",
        (
            '<p id="no-result" role="status" hidden>Không tìm thấy kết quả.'
            ' <span lang="en">No result.</span></p>'
        ),
        "</header>",
        "<main>",
    ]
    unit: str | None = None
    number = 0
    for entry in rows:
        if entry["unit"] != unit:
            if unit is not None:
                out += ["</tbody>", "</table>", "</section>"]
            unit = entry["unit"]
            number += 1
            out += [
                f'<section class="unit" aria-labelledby="unit-{number}">',
                f'<h2 id="unit-{number}">{esc(unit)}</h2>',
                "<table>",
                (
                    "<thead><tr>"
                    '<th scope="col" title="Name">Tên</th>'
                    '<th scope="col" title="E-mail address">Địa chỉ thư điện tử</th>'
                    '<th scope="col" title="Type">Loại</th>'
                    "</tr></thead>"
                ),
                "<tbody>",
            ]
        label, english = KIND_LABELS[entry["kind"]]
        search = search_fold(" ".join((entry["display_name"], entry["address"], unit)))
        out.append(
            f'<tr data-search="{esc(search)}">'
            f"<td>{esc(entry['display_name'])}</td>"
            f'<td><a href="{esc(_mailto(entry["address"]))}">{esc(entry["address"])}</a></td>'
            f'<td class="kind"><span title="{esc(english)}">{esc(label)}</span></td>'
            "</tr>"
        )
    if unit is not None:
        out += ["</tbody>", "</table>", "</section>"]
    out += [
        "</main>",
        "<footer>",
        (
            f'<p>Cập nhật <span lang="en">(generated)</span>: {esc(generated)}'
            f' · {len(rows)} mục <span lang="en">({len(rows)} entries)</span></p>'
        ),
        "</footer>",
        f"<script>{_JS}</script>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(out).encode("utf-8")


# --- CSV --------------------------------------------------------------------------


def render_csv(rows: Sequence[Entry]) -> bytes:
    """``unit,display_name,address,kind``, one line per entry, CRLF.

    Excel, opened on a .csv by double-click, reads the file in the Windows
    "ANSI" code page (Windows-1258 on a Vietnamese system) unless the file
    starts with a UTF-8 byte order mark; without it every accented letter
    comes out as mojibake. With the BOM it reads UTF-8. (Excel also splits on
    the list separator of Windows' regional settings: where that is not a
    comma, open the file with Data > From Text/CSV instead.) Python reads it
    back with ``encoding="utf-8-sig"``.
    """
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for entry in rows:
        writer.writerow([entry["unit"], entry["display_name"], entry["address"], entry["kind"]])
    return buf.getvalue().encode("utf-8-sig")


# --- vCard ------------------------------------------------------------------------


def vcard_escape(value: str) -> str:
    """A text value as RFC 6350 §3.4 writes it: \\\\, \\, \\; and \\n escaped."""
    value = value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    return value.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def fold_line(line: str, limit: int, newline: str) -> str:
    """``line`` folded (RFC 6350 §3.2, RFC 2849): no physical line longer than
    ``limit`` octets of UTF-8, each continuation starting with one space. A
    character, and the combining marks after it, are never split."""
    pieces: list[str] = []
    for ch in line:
        if pieces and unicodedata.combining(ch):
            pieces[-1] += ch
        else:
            pieces.append(ch)
    lines: list[str] = []
    current = ""
    size = 0
    for piece in pieces:
        n = len(piece.encode("utf-8"))
        if size + n > limit and current.strip():
            lines.append(current)
            current, size = " ", 1
        current += piece
        size += n
    lines.append(current)
    return newline.join(lines)


def vcard_uid(address: str) -> str:
    """The card's UID: the same address gives the same UID on every export, so
    an address book updates a contact instead of adding a second one."""
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "mailto:" + address))


def render_vcard(rows: Sequence[Entry]) -> bytes:
    """One vCard 4.0 per entry: KIND individual for people, group for unit
    mailboxes and aliases; N only for people (family;given;middle); ORG is
    the ministry then the unit (RFC 6350 §6.6.4: organisation, then units)."""
    lines: list[str] = []
    for entry in rows:
        name = entry["display_name"]
        props = ["BEGIN:VCARD", "VERSION:4.0"]
        props.append("KIND:" + ("individual" if entry["kind"] == "personal" else "group"))
        props.append("FN:" + vcard_escape(name))
        if entry["kind"] == "personal":
            family, middle, given = name_parts(name)
            props.append("N:" + ";".join(vcard_escape(p) for p in (family, given, middle, "", "")))
        props.append("EMAIL;TYPE=work:" + vcard_escape(entry["address"]))
        props.append(f"ORG:{vcard_escape(MINISTRY)};{vcard_escape(entry['unit'])}")
        props.append("UID:" + vcard_uid(entry["address"]))
        props.append("END:VCARD")
        lines += [fold_line(p, 75, "\r\n") for p in props]
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


# --- LDIF -------------------------------------------------------------------------


def _safe_string(value: str) -> bool:
    """RFC 2849 SAFE-STRING, and not ending in a space (which §4 says SHOULD be
    base64, since a reader may strip it)."""
    if not value:
        return True
    if any(ord(ch) > 127 or ch in "\0\n\r" for ch in value):
        return False
    return value[0] not in " :<" and not value.endswith(" ")


def ldif_attr(name: str, value: str) -> str:
    """``name: value``, or ``name:: base64`` when the value is not SAFE-STRING."""
    if _safe_string(value):
        line = f"{name}: {value}"
    else:
        line = f"{name}:: " + base64.b64encode(value.encode("utf-8")).decode("ascii")
    return fold_line(line, 76, "\n")


def dn_escape(value: str) -> str:
    """An attribute value in a DN string (RFC 4514 §2.4)."""
    out = []
    for i, ch in enumerate(value):
        if ch in '"+,;<>\\=' or (i == 0 and ch in " #") or (i == len(value) - 1 and ch == " "):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def ldap_dn(address: str, base_dn: str = BASE_DN) -> str:
    return f"mail={dn_escape(address)},{base_dn}"


def render_ldif(rows: Sequence[Entry], *, base_dn: str = BASE_DN) -> bytes:
    """One inetOrgPerson entry per directory entry (units and aliases too, so
    that clients searching for people with a mail find them). ``sn`` is
    required by the person class: the family name for people, the display
    name for the others. ``description`` is the kind, in Vietnamese."""
    blocks = ["version: 1\n# hopthu: the ministry's e-mail directory, one entry per mailbox\n"]
    for entry in rows:
        name = entry["display_name"]
        attrs = [("dn", ldap_dn(entry["address"], base_dn))]
        attrs += [
            ("objectClass", c) for c in ("top", "person", "organizationalPerson", "inetOrgPerson")
        ]
        attrs.append(("cn", name))
        if entry["kind"] == "personal":
            family, _, given = name_parts(name)
            attrs.append(("sn", family or given))
            attrs.append(("givenName", given))
        else:
            attrs.append(("sn", name))
        attrs += [
            ("displayName", name),
            ("mail", entry["address"]),
            ("ou", entry["unit"]),
        ]
        if entry.get("staff_id"):
            attrs.append(("employeeNumber", entry["staff_id"]))
        attrs.append(("description", KIND_LABELS[entry["kind"]][0]))
        blocks.append("".join(ldif_attr(k, v) + "\n" for k, v in attrs))
    return "\n".join(blocks).encode("ascii")


# --- files --------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (a reader sees the old file or the new one)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build(
    entries: Sequence[Entry],
    outdir: Path,
    *,
    title: str = DEFAULT_TITLE,
    generated: str,
    base_dn: str = BASE_DN,
) -> dict[str, Path]:
    """Write the directory of ``entries``' active mailboxes into ``outdir``.

    Returns the files by format: ``html``, ``csv``, ``vcf``, ``ldif``.
    ``generated`` is printed in the page's footer as given (the caller's
    timestamp), so that the output depends on the input only. ValueError if
    an entry is malformed or an address is listed twice.
    """
    data = render_all(entries, title=title, generated=generated, base_dn=base_dn)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt, name in FILES.items():
        paths[fmt] = outdir / name
        _write(paths[fmt], data[name])
    return paths


def render_all(entries: Sequence[Entry], *, title: str = DEFAULT_TITLE, generated: str,
               base_dn: str = BASE_DN) -> dict[str, bytes]:
    """The four files' bytes by file name (FILES' values), as build() writes them."""
    rows = ordered(entries)
    data = {
        "html": render_html(rows, title=title, generated=generated),
        "csv": render_csv(rows),
        "vcf": render_vcard(rows),
        "ldif": render_ldif(rows, base_dn=base_dn),
    }
    return {FILES[fmt]: content for fmt, content in data.items()}
