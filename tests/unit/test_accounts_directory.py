"""The e-mail directory (hopthu.accounts.directory): Vietnamese order, and the four files.

Each format is read back by a parser written here, strict enough to fail on
what a real reader would reject: the CSV with the csv module, the vCard
(RFC 6350) and the LDIF (RFC 2849) with small parsers that unfold lines and
undo escaping or base64, the page with html.parser. Neither vobject nor the
ldap-utils tools are assumed to be installed. When node is on PATH, the
page's search script also runs against a stub of the DOM, so the
accent-insensitive filter is tested, not only present.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import random
import re
import shutil
import subprocess
import unicodedata
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hopthu.accounts import directory

GENERATED = "2026-03-01 08:00 (UTC+7)"
LONG_UNIT = "Cục Kiểm tra văn bản quy phạm pháp luật và Quản lý xử lý vi phạm hành chính"


def entry(kind: str, address: str, name: str, unit: str, state: str = "active",
          **extra: str) -> dict[str, str]:
    return {"address": address, "kind": kind, "display_name": name, "unit": unit,
            "state": state, **extra}


REGISTRY: list[dict[str, str]] = [
    entry("personal", "an.tv@moj.gov.vn", "Trần Văn An", "Vụ Pháp chế", staff_id="BTP-0001"),
    entry("personal", "binh.nt@moj.gov.vn", "Nguyễn Thị Bình", "Vụ Pháp chế"),
    entry("personal", "an.lv@moj.gov.vn", "Lê Văn An", "Vụ Pháp chế", staff_id="BTP-0002"),
    entry("unit", "vpc@moj.gov.vn", "Vụ Pháp chế", "Vụ Pháp chế"),
    entry("alias", "vanthu.vpc@moj.gov.vn", "Văn thư Vụ Pháp chế", "Vụ Pháp chế"),
    entry("personal", "anh.dt@moj.gov.vn", "Đào Thị Ánh", "Cục Bổ trợ tư pháp"),
    entry("personal", "an.nv@moj.gov.vn", "Nguyễn Văn An", "Cục Bổ trợ tư pháp", "disabled"),
    entry("personal", "thao.cttn@moj.gov.vn", "Công Tằng Tôn Nữ Thị Hoàng Phương Thảo",
          LONG_UNIT),
    entry("unit", "danguy@moj.gov.vn", "Đảng ủy Bộ", "Đảng ủy Bộ"),
    entry("personal", "ung.pn@moj.gov.vn", "Phạm Ngọc Ưng", "Văn phòng Bộ"),
    entry("personal", "uyen.lt@moj.gov.vn", "Lý Thị Uyên", "Văn phòng Bộ"),
    entry("personal", "dat.vv@moj.gov.vn", "Vũ Văn Đạt", "Văn phòng Bộ", staff_id="BTP-0003"),
    entry("personal", "dung.hd@moj.gov.vn", "Hồ Đức Dũng", "Văn phòng Bộ"),
    entry("unit", "vp@moj.gov.vn", "Văn phòng Bộ", "Văn phòng Bộ"),
    # , ; \ for vCard escaping, < & " for HTML escaping.
    entry("alias", "tiepnhan@moj.gov.vn",
          'Tiếp nhận; khiếu nại, tố cáo \\ <đơn thư> & "góp ý"', "Văn phòng Bộ"),
    entry("personal", "em.hv@moj.gov.vn", "Hoàng Văn Em", "Văn phòng Bộ", "archived"),
    entry("alias", "cu@moj.gov.vn", "Hộp thư cũ", "Văn phòng Bộ", "disabled"),
]

#: The active entries in directory order: units in Vietnamese order (Đảng ủy
#: after Cục, before Văn phòng; code-point order would put it last); in a
#: unit, its mailbox, people by given name (Dũng < Đạt < Uyên < Ưng; An before
#: Bình, Lê before Trần), aliases.
EXPECTED = [
    "anh.dt@moj.gov.vn",
    "thao.cttn@moj.gov.vn",
    "danguy@moj.gov.vn",
    "vp@moj.gov.vn",
    "dung.hd@moj.gov.vn",
    "dat.vv@moj.gov.vn",
    "uyen.lt@moj.gov.vn",
    "ung.pn@moj.gov.vn",
    "tiepnhan@moj.gov.vn",
    "vpc@moj.gov.vn",
    "an.lv@moj.gov.vn",
    "an.tv@moj.gov.vn",
    "binh.nt@moj.gov.vn",
    "vanthu.vpc@moj.gov.vn",
]
BY_ADDRESS = {e["address"]: e for e in REGISTRY}


@pytest.fixture
def built(tmp_path: Path) -> dict[str, Path]:
    return directory.build(REGISTRY, tmp_path / "out", generated=GENERATED)


# --- Vietnamese order -------------------------------------------------------------

#: Every letter with a mark (ă â đ ê ô ơ ư), the six tones in order (ma mà
#: mả mã má mạ), whole words before longer ones (An < An Bình < Anh), tones
#: weaker than letters (Ánh < Ăn), case weakest (an < An), f/j/w/z in Latin
#: places.
VIETNAMESE_ORDER = [
    "a", "an", "An", "An Bình", "Anh", "Ánh", "Ăn", "Ắn", "Ân", "Ẩn", "Ấn",
    "Bình", "Cường", "Dung", "Dũng", "Dương", "Đào", "Đạt",
    "e", "è", "ẻ", "ẽ", "é", "ẹ", "ê", "ề", "ể", "ễ", "ế", "ệ",
    "Fan", "Giang", "Hoa", "Hòa", "Huy", "Jack",
    "ma", "mà", "mả", "mã", "má", "mạ",
    "o", "ò", "ỏ", "õ", "ó", "ọ", "ô", "ồ", "ổ", "ỗ", "ố", "ộ", "ơ", "ờ", "ở", "ỡ", "ớ", "ợ",
    "Quỳnh", "u", "ù", "ủ", "ũ", "ú", "ụ", "ư", "ừ", "ử", "ữ", "ứ", "ự",
    "Văn", "Vân", "Vũ", "William", "Xuân", "Yến", "Zoe",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(5))
def test_vietnamese_order(seed: int) -> None:
    words = VIETNAMESE_ORDER[:]
    random.Random(seed).shuffle(words)
    assert sorted(words, key=directory.vietnamese_key) == VIETNAMESE_ORDER


def test_vietnamese_order_ignores_normalisation_form() -> None:
    # Text typed with combining marks (NFD, as macOS or VNI input give it)
    # sorts where its precomposed form does.
    decomposed = [unicodedata.normalize("NFD", w) for w in ("Đạt", "Ấn", "mã")]
    keys = [directory.vietnamese_key(w)[:3] for w in decomposed]
    assert keys == [directory.vietnamese_key(w)[:3] for w in ("Đạt", "Ấn", "mã")]


def test_sort_people_by_given_name_then_full_name() -> None:
    names = ["Nguyễn Thị Bình", "Trần Văn An", "Nguyễn Văn An", "Lê Văn An", "Phạm Thị Ánh",
             "Đỗ Văn Anh", "Vũ Đức Đạt", "Bùi Dũng", "An"]
    entries = [{"display_name": n, "address": f"{i}@moj.gov.vn"} for i, n in enumerate(names)]
    got = [e["display_name"] for e in directory.sort_people(reversed(entries))]
    assert got == ["An", "Lê Văn An", "Nguyễn Văn An", "Trần Văn An", "Đỗ Văn Anh",
                   "Phạm Thị Ánh", "Nguyễn Thị Bình", "Bùi Dũng", "Vũ Đức Đạt"]


def test_search_fold() -> None:
    assert directory.search_fold("Nguyễn") == directory.search_fold("nguyen") == "nguyen"
    assert directory.search_fold("ĐÀO Thị Ánh") == "dao thi anh"
    assert directory.search_fold(unicodedata.normalize("NFD", "Ưng")) == "ung"


# --- which entries, in which order ---------------------------------------------------


def test_only_active_entries_in_directory_order() -> None:
    rows = directory.ordered(REGISTRY)
    assert [e["address"] for e in rows] == EXPECTED
    assert len(rows) == 14 == sum(e["state"] == "active" for e in REGISTRY)
    # The input's order does not matter.
    assert directory.ordered(list(reversed(REGISTRY))) == rows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "group"}, "kind 'group'"),
        ({"state": "deleted"}, "state 'deleted'"),
        ({"address": "no-at-sign"}, "not local@domain"),
        ({"display_name": " "}, "display_name must be a non-empty string"),
        ({"display_name": "=HYPERLINK(1)"}, "must not start with"),
        ({"address": "AN.TV@moj.gov.vn"}, "listed twice"),
    ],
)
def test_bad_entries_are_refused(change: dict[str, str], message: str, tmp_path: Path) -> None:
    bad = {**BY_ADDRESS["binh.nt@moj.gov.vn"], **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        directory.build([*REGISTRY, bad], tmp_path, generated=GENERATED)
    assert not list(tmp_path.iterdir())


# --- CSV --------------------------------------------------------------------------


def test_csv_reads_back(built: dict[str, Path]) -> None:
    raw = built["csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfunit,display_name,address,kind\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n") == 1 + len(EXPECTED)
    with built["csv"].open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["unit", "display_name", "address", "kind"]
    assert rows[1:] == [
        [BY_ADDRESS[a]["unit"], BY_ADDRESS[a]["display_name"], a, BY_ADDRESS[a]["kind"]]
        for a in EXPECTED
    ]


# --- vCard ------------------------------------------------------------------------

_VCARD_ESCAPES = {"\\": "\\", ",": ",", ";": ";", "n": "\n", "N": "\n"}


def vcard_split(value: str, sep: str) -> list[str]:
    """Split a vCard value on unescaped ``sep`` and undo the escapes (RFC 6350 §3.4)."""
    parts, current, chars = [], "", iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars)
            assert nxt in _VCARD_ESCAPES, f"bad escape \\{nxt} in {value!r}"
            current += _VCARD_ESCAPES[nxt]
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            assert ch not in ",;", f"unescaped {ch!r} in {value!r}"
            current += ch
    return [*parts, current]


def parse_vcards(raw: bytes) -> list[dict[str, list[tuple[str, str]]]]:
    """A strict reader: CRLF only, physical lines of at most 75 octets that are
    each valid UTF-8, unfolding, BEGIN/VERSION first and END last in a card."""
    assert raw.endswith(b"\r\n")
    physical = raw[:-2].split(b"\r\n")
    for line in physical:
        assert b"\n" not in line and b"\r" not in line
        assert len(line) <= 75, line
        line.decode("utf-8")  # a folded multi-byte character raises here
    logical: list[str] = []
    for line in (p.decode("utf-8") for p in physical):
        if line.startswith((" ", "\t")):
            assert logical, "a continuation line cannot come first"
            logical[-1] += line[1:]
        else:
            logical.append(line)
    cards: list[dict[str, list[tuple[str, str]]]] = []
    card: dict[str, list[tuple[str, str]]] | None = None
    for line in logical:
        m = re.fullmatch(r"([A-Za-z0-9-]+)((?:;[A-Za-z0-9-]+=[^;:]*)*):(.*)", line)
        assert m, f"not a content line: {line!r}"
        name, params, value = m.group(1).upper(), m.group(2), m.group(3)
        if name == "BEGIN":
            assert card is None and value == "VCARD"
            card = {}
            continue
        assert card is not None, f"{line!r} outside a card"
        if name == "END":
            assert value == "VCARD"
            cards.append(card)
            card = None
            continue
        if not card:
            assert (name, value) == ("VERSION", "4.0"), "VERSION must follow BEGIN"
        card.setdefault(name, []).append((params, value))
    assert card is None, "last card not closed"
    return cards


def test_vcard_parses(built: dict[str, Path]) -> None:
    raw = built["vcf"].read_bytes()
    cards = parse_vcards(raw)
    assert len(cards) == len(EXPECTED)
    assert any(line.startswith(b" ") for line in raw.split(b"\r\n")), "nothing was folded"
    for card, address in zip(cards, EXPECTED, strict=True):
        entry = BY_ADDRESS[address]
        assert card["VERSION"] == [("", "4.0")]
        assert [vcard_split(v, "\0") for _, v in card["FN"]] == [[entry["display_name"]]]
        assert [vcard_split(v, "\0") for _, v in card["EMAIL"]] == [[address]]
        assert vcard_split(card["ORG"][0][1], ";") == ["Bộ Tư pháp", entry["unit"]]
        kind = "individual" if entry["kind"] == "personal" else "group"
        assert card["KIND"] == [("", kind)]
        uid = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "mailto:" + address))
        assert card["UID"] == [("", uid)]
        if entry["kind"] == "personal":
            family, given, middle, prefix, suffix = vcard_split(card["N"][0][1], ";")
            words = entry["display_name"].split()
            assert (family, given, middle) == (words[0], words[-1], " ".join(words[1:-1]))
            assert (prefix, suffix) == ("", "")
        else:
            assert "N" not in card
    # The alias with , ; \ in its name came through the escaping.
    alias = cards[EXPECTED.index("tiepnhan@moj.gov.vn")]
    assert "\\;" in alias["FN"][0][1] and "\\," in alias["FN"][0][1]


def test_vcard_escape_and_fold() -> None:
    assert directory.vcard_escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    line = "FN:" + "Nguyễn Thị Hoàng Phương Thảo " * 8
    folded = directory.fold_line(line, 75, "\r\n").encode("utf-8").split(b"\r\n")
    assert len(folded) > 3
    assert all(len(p) <= 75 for p in folded)
    assert all(p.startswith(b" ") for p in folded[1:])
    assert b"".join(p[1:] if i else p for i, p in enumerate(folded)).decode() == line


# --- LDIF -------------------------------------------------------------------------

#: RFC 2849 SAFE-STRING: SAFE-INIT-CHAR then SAFE-CHARs.
SAFE_STRING = re.compile(
    r"(?:[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*)?"
)


def parse_ldif(raw: bytes) -> list[list[tuple[str, str]]]:
    """A small RFC 2849 reader: ASCII lines of at most 76 octets, unfolding,
    comments, blank-line separated records, ``attr:: base64`` decoded."""
    text = raw.decode("ascii")
    assert text.endswith("\n")
    lines = text[:-1].split("\n")
    assert all(len(line) <= 76 for line in lines), max(lines, key=len)
    logical: list[str] = []
    for line in lines:
        if line.startswith(" "):
            logical[-1] += line[1:]
        else:
            logical.append(line)
    records: list[list[tuple[str, str]]] = [[]]
    for line in logical:
        if line.startswith("#"):
            continue
        if line == "":
            records.append([])
            continue
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9-]*)(::?) ?(.*)", line)
        assert m, f"not an attrval-spec: {line!r}"
        name, sep, value = m.groups()
        if sep == "::":
            value = base64.b64decode(value, validate=True).decode("utf-8")
        else:
            assert SAFE_STRING.fullmatch(value), f"{name} should be base64: {value!r}"
        records[-1].append((name, value))
    records = [r for r in records if r]
    assert records[0] == [("version", "1")]
    return records[1:]


def test_ldif_parses_and_names_round_trip(built: dict[str, Path]) -> None:
    raw = built["ldif"].read_bytes()
    records = parse_ldif(raw)
    assert len(records) == len(EXPECTED)
    assert b"cn:: " in raw and "\n " in raw.decode("ascii"), "no base64 or no folding"
    for record, address in zip(records, EXPECTED, strict=True):
        entry = BY_ADDRESS[address]
        assert record[0] == ("dn", f"mail={address},ou=directory,dc=moj,dc=gov,dc=vn")
        attrs: dict[str, list[str]] = {}
        for name, value in record[1:]:
            attrs.setdefault(name, []).append(value)
        assert attrs["objectClass"] == ["top", "person", "organizationalPerson",
                                        "inetOrgPerson"]
        assert attrs["cn"] == attrs["displayName"] == [entry["display_name"]]
        assert attrs["mail"] == [address]
        assert attrs["ou"] == [entry["unit"]]
        assert attrs.get("employeeNumber") == ([entry["staff_id"]] if "staff_id" in entry
                                               else None)
        if entry["kind"] == "personal":
            words = entry["display_name"].split()
            assert (attrs["sn"], attrs["givenName"]) == ([words[0]], [words[-1]])
        else:
            assert attrs["sn"] == [entry["display_name"]] and "givenName" not in attrs


@pytest.mark.parametrize(
    ("value", "b64"),
    [("plain", False), (" leading space", True), (":colon", True), ("<angle", True),
     ("trailing ", True), ("Bình", True), ("a:b<c", False), ("", False)],
)
def test_ldif_base64_exactly_when_not_safe(value: str, b64: bool) -> None:
    line = directory.ldif_attr("cn", value)
    assert line.startswith("cn:: ") == b64
    if b64:
        assert base64.b64decode(line[5:]).decode() == value


def test_ldif_dn_escapes_special_characters() -> None:
    assert directory.ldap_dn("a+b,c@moj.gov.vn") == (
        "mail=a\\+b\\,c@moj.gov.vn,ou=directory,dc=moj,dc=gov,dc=vn"
    )


# --- HTML -------------------------------------------------------------------------


class Page(HTMLParser):
    """Rows (name, href, address text, kind label, kind title), tags, script, style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.groups = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in ("meta", "input"):
            return
        self.stack.append(tag)
        if tag == "section":
            self.groups += 1
        if tag == "tr" and "data-search" in a:
            self.rows.append([])
        if tag == "a" and self.rows and "tbody" in self.stack:
            self.rows[-1].append(a["href"] or "")
        if tag == "span" and a.get("title") and self.rows and "tbody" in self.stack:
            self.rows[-1].append(a["title"] or "")

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "script":
            self.scripts.append(data)
        elif self.stack and self.stack[-1] == "style":
            self.styles.append(data)
        elif "tbody" in self.stack and self.stack[-1] in ("td", "a", "span"):
            self.rows[-1].append(data)
        else:
            self.text.append(data)


def parse_page(raw: bytes) -> Page:
    page = Page()
    page.feed(raw.decode("utf-8"))
    page.close()
    assert page.stack == []
    return page


def test_html_rows_in_order(built: dict[str, Path]) -> None:
    raw = built["html"].read_bytes()
    assert raw.startswith(b'<!DOCTYPE html>\n<html lang="vi">\n')
    page = parse_page(raw)
    labels = {"personal": ("Personal mailbox", "Cá nhân"), "unit": ("Unit mailbox",
              "Hộp thư đơn vị"), "alias": ("Alias", "Bí danh")}
    assert page.rows == [
        [BY_ADDRESS[a]["display_name"], f"mailto:{a}", a, *labels[BY_ADDRESS[a]["kind"]]]
        for a in EXPECTED
    ]
    assert page.groups == 5
    footer = " ".join(page.text)
    assert GENERATED in footer and "14 mục" in footer
    # The name with < & " is text, not markup.
    assert "<đơn thư>".encode() not in raw and "&lt;đơn thư&gt;".encode() in raw
    assert ("label", {"for": "q"}) in page.tags


def test_html_is_self_contained_and_csp_allows_its_script(built: dict[str, Path]) -> None:
    page = parse_page(built["html"].read_bytes())
    for tag, attrs in page.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
        assert "src" not in attrs, (tag, attrs)
        if "href" in attrs:
            assert (attrs["href"] or "").startswith("mailto:"), attrs
    (csp,) = [a["content"] for t, a in page.tags if a.get("http-equiv") ==
              "Content-Security-Policy"]
    assert csp is not None and "default-src 'none'" in csp
    (script,), (style,) = page.scripts, page.styles
    for source in (script, style):
        digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert 'addEventListener("input"' in script and "normalize(\"NFD\")" in script


def test_build_is_byte_identical(tmp_path: Path) -> None:
    first = directory.build(REGISTRY, tmp_path / "a", generated=GENERATED)
    shuffled = REGISTRY[:]
    random.Random(1).shuffle(shuffled)
    second = directory.build(shuffled, tmp_path / "b", generated=GENERATED)
    assert set(first) == {"html", "csv", "vcf", "ldif"}
    for fmt in first:
        assert first[fmt].read_bytes() == second[fmt].read_bytes(), fmt
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        ["index.html", "directory.csv", "directory.vcf", "directory.ldif"]
    )


# The page's script, run by node against a stub DOM made from the parsed page.
_NODE_HARNESS = r"""
const data = JSON.parse(require("fs").readFileSync(0, "utf8"));
const rows = data.groups.map(g => g.map(s => ({hidden: false, getAttribute: () => s})));
const groups = rows.map(rs => ({hidden: false, querySelectorAll: sel => {
  if (sel !== "tbody tr") throw new Error(sel); return rs; }}));
let onInput = null;
const input = {value: "", addEventListener: (ev, fn) => { if (ev === "input") onInput = fn; }};
const box = {hidden: true}, none = {hidden: true};
const ids = {search: box, q: input, "no-result": none};
globalThis.document = {
  getElementById: id => { if (!(id in ids)) throw new Error(id); return ids[id]; },
  querySelectorAll: sel => { if (sel !== "section.unit") throw new Error(sel); return groups; },
};
(0, eval)(data.script);
const out = {box: !box.hidden, results: {}};
for (const q of data.queries) {
  input.value = q;
  onInput();
  out.results[q] = {
    rows: rows.flat().map(r => !r.hidden),
    groups: groups.map(g => !g.hidden),
    none: !none.hidden,
  };
}
console.log(JSON.stringify(out));
"""


class Groups(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.groups: list[list[str]] = []
        self.script = ""
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.groups.append([])
        elif tag == "tr" and "data-search" in a:
            self.groups[-1].append(a["data-search"] or "")
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script:
            self.script += data


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_html_search_script_filters_accent_insensitively(built: dict[str, Path]) -> None:
    parsed = Groups()
    parsed.feed(built["html"].read_text(encoding="utf-8"))
    queries = ["", "nguyen", "Nguyễn", unicodedata.normalize("NFD", "NGUYỄN"), "dao", "Đào",
               "ung", "tran an", "phap che", "zzz"]
    result = subprocess.run(
        ["node", "-e", _NODE_HARNESS],
        input=json.dumps({"groups": parsed.groups, "script": parsed.script, "queries": queries}),
        capture_output=True, text=True, check=True, timeout=60,
    )
    out = json.loads(result.stdout)
    assert out["box"], "the script did not show the search box"
    unit_of = [BY_ADDRESS[a]["unit"] for a in EXPECTED]
    units = list(dict.fromkeys(unit_of))

    def check(query: str, addresses: set[str]) -> None:
        got = out["results"][query]
        assert {a for a, shown in zip(EXPECTED, got["rows"], strict=True) if shown} == addresses
        assert got["groups"] == [any(unit_of[i] == u and a in addresses
                                     for i, a in enumerate(EXPECTED)) for u in units]
        assert got["none"] == (not addresses and query != "")

    check("", set(EXPECTED))
    for query in ("nguyen", "Nguyễn", unicodedata.normalize("NFD", "NGUYỄN")):
        check(query, {"binh.nt@moj.gov.vn"})
    for query in ("dao", "Đào"):
        check(query, {"anh.dt@moj.gov.vn"})
    check("ung", {"ung.pn@moj.gov.vn", "dung.hd@moj.gov.vn"})  # a substring of "dung"
    check("tran an", {"an.tv@moj.gov.vn"})
    check("phap che", {a for a in EXPECTED if BY_ADDRESS[a]["unit"] == "Vụ Pháp chế"})
    check("zzz", set())
