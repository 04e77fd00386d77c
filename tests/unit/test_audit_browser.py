"""The auditor's report opens in a browser: Debian's headless Chromium (issue 7, item 4).

The report is built from the real DECREE.md and compliance/controls.yml with
a run of the EICAR and GTUBE tests, written where the lab writes it, and
opened with `chromium --headless --screenshot` and `--dump-dom`
(hopthu/audit/browser.py). The screenshot must show something, and the page
Chromium built must hold every article's heading, the contents' links to
them, and links that land; from Art. 11.6 an auditor reaches the Rspamd and
ClamAV templates and the EICAR/GTUBE results in two clicks.

Chromium is one of the packages the README and .ci/run install; without it
these tests fail and say so.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from test_audit import GENERATED, case, element, junit_file

from hopthu import ROOT, cli
from hopthu.audit import browser, decree, report

pytestmark = pytest.mark.control("ART16-AUDIT")

EICAR = "test_eicar_from_the_internet_is_refused_with_5xx"
GTUBE = "test_gtube_is_refused"
TEMPLATES = ("templates/etc/rspamd/local.d/antivirus.conf.j2", "templates/etc/clamav/clamd.conf.j2",
             "templates/etc/rspamd/local.d/actions.conf.j2")


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> tuple[report.Written, browser.Page]:
    where = tmp_path_factory.mktemp("browser")
    run = junit_file(where / "lab-junit.xml",
                     case(f"tests/lab/test_filtering.py::{EICAR}", controls=("ART11-6-AV",)),
                     case(f"tests/lab/test_filtering.py::{GTUBE}", controls=("ART11-6-SPAM",)))
    written = report.write_report(inventory="lab", junit_files=[run],
                                  out_dir=where / "reports" / "audit", ask_hosts=False,
                                  generated_at=GENERATED)
    try:
        page = browser.open_report(written.html, written.html.with_suffix(".png"))
    except browser.BrowserError as exc:
        pytest.fail(str(exc), pytrace=False)
    return written, page


def test_the_report_opens_in_headless_chromium_and_its_screenshot_is_not_blank(
    opened: tuple[report.Written, browser.Page],
) -> None:
    _, page = opened
    width, height, _, _ = browser.png_rows(page.png)
    assert (width, height) == browser.WINDOW
    assert browser.blank(page.png) is None


def test_the_page_chromium_built_has_every_articles_heading_and_links_that_land(
    opened: tuple[report.Written, browser.Page],
) -> None:
    written, page = opened
    rows = decree.load()
    assert browser.page_problems(page.dom, rows, written.html.parent) == []
    headings = browser.parse(page.dom).headings
    assert headings["art-11-6"].startswith("Art. 11.6:")
    assert len([a for a in headings if a.startswith("art-")]) == len(rows)


def test_in_the_browser_art_11_6_reaches_the_filter_templates_and_eicar_gtube_in_two_clicks(
    opened: tuple[report.Written, browser.Page],
) -> None:
    written, page = opened
    whole = browser.parse(page.dom)
    # Click 1: the contents link to Art. 11.6's section.
    assert "#art-11-6" in whole.hrefs and "art-11-6" in whole.ids
    start = page.dom.index('<section id="art-11-6">')
    section = page.dom[start:page.dom.index("</section>", start)]
    links = browser.parse(section).hrefs
    # Click 2: the templates that enforce it, which open from the report ...
    for template in TEMPLATES:
        href = next((h for h in links if h.endswith(template)), None)
        assert href is not None, f"Art. 11.6 does not link {template}"
        assert (written.html.parent / href).resolve() == (ROOT / template).resolve()
    # ... and the EICAR and GTUBE results: rows of the page that say "passed".
    for test in (EICAR, GTUBE):
        anchor = next((h[1:] for h in links if h.startswith("#") and h.endswith(test)), None)
        assert anchor is not None and anchor in whole.ids, f"Art. 11.6 does not link {test}"
        row = re.sub(r"<details>.*?</details>", "", element(page.dom, anchor, "tr"),
                     flags=re.DOTALL)
        assert 'class="badge b-passed"' in row, f"{test}'s row does not show its result"


def test_the_audit_command_saves_the_screenshot_beside_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = junit_file(tmp_path / "lab-junit.xml",
                     case(f"tests/lab/test_filtering.py::{GTUBE}", controls=("ART11-6-SPAM",)))
    out = tmp_path / "audit"
    code = cli.main(["audit", "--inventory", "lab", "--junit", str(run), "--no-hosts",
                     "--out", str(out), "--screenshot"])
    printed = capsys.readouterr()
    assert code == 1, "most controls have no evidence in this run: the audit fails"
    assert f"wrote {out / 'report.png'}" in printed.out and "in the browser:" not in printed.err
    assert browser.blank(out / "report.png") is None


# --- the checks themselves, without a browser --------------------------------------------


def png(path: Path, rows: list[bytes], channels: int = 3) -> Path:
    """An 8-bit PNG of raw pixel rows, every row with filter 0 (none)."""
    width = len(rows[0]) // channels
    colour = {1: 0, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, colour,
                                                  0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows)))
                     + chunk(b"IEND", b""))
    return path


def test_a_white_screenshot_is_blank_and_one_with_text_is_not(tmp_path: Path) -> None:
    white = bytes([255, 255, 255]) * 40
    assert "is blank: 1 colour(s)" in browser.blank(png(tmp_path / "w.png", [white] * 40))
    text = [white] * 30 + [bytes([0, 0, 0, 200, 30, 30, 255, 255, 255] * 13 + [9, 9, 9])] * 10
    assert browser.blank(png(tmp_path / "t.png", text)) is None


def test_every_png_filter_is_read_back_to_the_same_pixels(tmp_path: Path) -> None:
    rows = [bytes((x * 7 + y * 13 + c) & 0xFF for x in range(9) for c in range(3))
            for y in range(6)]
    raw = png(tmp_path / "a.png", rows)
    # Re-encode each row with filters 1-4 (Sub, Up, Average, Paeth), as encoders do.
    filtered, previous = [], bytes(len(rows[0]))
    for y, row in enumerate(rows):
        kind = y % 4 + 1
        out = bytearray()
        for i, value in enumerate(row):
            left = row[i - 3] if i >= 3 else 0
            up = previous[i]
            corner = previous[i - 3] if i >= 3 else 0
            guess = {1: left, 2: up, 3: (left + up) >> 1,
                     4: browser._paeth(left, up, corner)}[kind]
            out.append((value - guess) & 0xFF)
        filtered.append(bytes([kind]) + bytes(out))
        previous = row
    data = raw.read_bytes()
    start = data.index(b"IDAT") - 4
    end = data.index(b"IEND") - 4
    body = zlib.compress(b"".join(filtered))
    raw.write_bytes(data[:start] + struct.pack(">I", len(body)) + b"IDAT" + body
                    + struct.pack(">I", zlib.crc32(b"IDAT" + body)) + data[end:])
    assert browser.png_rows(raw)[3] == rows


def test_page_problems_name_a_missing_article_a_dead_link_and_a_link_that_leaves(
    tmp_path: Path,
) -> None:
    rows = [r for r in decree.load() if r.article in ("3", "11.6")]
    assert rows, f"{decree.DECREE_FILE} has no Art. 3 or 11.6"
    dom = ('<h1>Audit report</h1><a href="#art-3">Art. 3</a><a href="#nowhere">x</a>'
           '<a href="https://example.org/">out</a><a href="missing.j2">t</a>'
           '<section id="art-3"><h2>Art. 3: Where</h2></section>')
    assert browser.page_problems(dom, rows, tmp_path) == [
        "Art. 11.6: no section #art-11-6 with a heading",
        "Art. 11.6: the contents do not link #art-11-6",
        "the link #nowhere lands on no element of the page",
        "the link https://example.org/ leaves the report (it must be self-contained)",
        f"the link missing.j2 names {tmp_path / 'missing.j2'}, which does not exist",
    ]


def test_a_report_the_browser_does_not_show_whole_exits_3_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(html: Path, rows: object) -> tuple[Path, list[str]]:
        return html.with_suffix(".png"), ["Art. 11.6: no section #art-11-6 with a heading"]

    monkeypatch.setattr(browser, "check_report", broken)
    run = junit_file(tmp_path / "lab-junit.xml",
                     case(f"tests/lab/test_filtering.py::{GTUBE}", controls=("ART11-6-SPAM",)))
    code = cli.main(["audit", "--inventory", "lab", "--junit", str(run), "--no-hosts",
                     "--out", str(tmp_path / "audit"), "--screenshot"])
    assert code == 3, "a broken report is told apart from an audit that fails (1)"
    assert ("hopthu audit: in the browser: Art. 11.6: no section #art-11-6 with a heading"
            in capsys.readouterr().err)
    assert (tmp_path / "audit" / "report.html").is_file(), "the report is kept, to be looked at"

    def no_chromium(html: Path, rows: object) -> tuple[Path, list[str]]:
        raise browser.BrowserError("chromium is not installed: apt-get install chromium")

    monkeypatch.setattr(browser, "check_report", no_chromium)
    assert cli.main(["audit", "--inventory", "lab", "--junit", str(run), "--no-hosts",
                     "--out", str(tmp_path / "audit"), "--screenshot"]) == 3
    assert "could not be opened in a browser: chromium is not installed" in \
        capsys.readouterr().err
