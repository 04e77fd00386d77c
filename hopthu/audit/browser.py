"""Open the audit report in Debian's headless Chromium, as an auditor's browser would.

    page = browser.open_report(Path("reports/audit/report.html"), png=Path("report.png"))
    problems = browser.blank(page.png) or browser.page_problems(page.dom, rows, out_dir)

`open_report` runs ``chromium --headless`` twice on the file: once for a
screenshot (PNG) and once for the DOM it built (``--dump-dom``). Nothing is
fetched: the report is one self-contained file (hopthu/audit/render.py), and
Chromium runs with a throw-away profile and its background networking off.

`blank` reads the PNG with the standard library (zlib, no imaging library)
and says whether it shows anything. `page_problems` checks the DOM: every
article of the decree has its section and heading and a link to it from the
contents, every in-page link lands on an element, and every link into the
checkout names a file that exists.

Chromium comes from Debian (the `chromium` package; .ci/run installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from hopthu.audit.decree import Row

#: The window the screenshot shows: the report's header, summary and the
#: start of the test runs.
WINDOW = (1280, 1024)
TIMEOUT = 120
#: Chromium without its first-run work, sync, component updates or any
#: other background request: it only opens the file.
FLAGS = (
    "--headless", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
)


class BrowserError(RuntimeError):
    """Chromium is missing or could not open the page; the message says what to do."""


@dataclass(frozen=True)
class Page:
    dom: str
    png: Path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BrowserError("chromium is not installed: apt-get install chromium "
                           "fonts-dejavu-core (the packages the README and .ci/run name)")
    return found


def _run(args: list[str], profile: str) -> subprocess.CompletedProcess[str]:
    # Chromium refuses to run as root with its sandbox; the page is our own file.
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    try:
        done = subprocess.run([chromium(), *FLAGS, *sandbox, f"--user-data-dir={profile}",
                               *args], capture_output=True, text=True, timeout=TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BrowserError(f"chromium did not finish within {TIMEOUT} s: {' '.join(args)}") \
            from exc
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if "ERROR:dbus" not in line]
        raise BrowserError(f"chromium exited {done.returncode} on {args[-1]}: "
                           + ("\n".join(said[-5:]) or "no message"))
    return done


def open_report(html: Path, png: Path, window: tuple[int, int] = WINDOW) -> Page:
    """Open `html` in headless Chromium: its screenshot in `png`, and the DOM it built."""
    url = Path(html).resolve().as_uri()
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="hopthu-chromium-") as profile:
        _run([f"--window-size={window[0]},{window[1]}", f"--screenshot={png}", url], profile)
        dom = _run(["--dump-dom", url], profile).stdout
    if not png.is_file():
        raise BrowserError(f"chromium wrote no screenshot to {png}")
    return Page(dom=dom, png=png)


# --- the screenshot -------------------------------------------------------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_rows(path: Path) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows of raw pixels) of an 8-bit, non-interlaced PNG."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    offset, idat, header = 8, bytearray(), None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path} has no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: only 8-bit non-interlaced grey/RGB(A) PNGs are read "
                         f"(depth {depth}, colour type {colour}, interlace {interlace})")
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((x + p) & 0xFF for x, p in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                corner = previous[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, previous[i], corner)) & 0xFF
        elif kind != 0:
            raise ValueError(f"{path}: unknown PNG filter {kind} in row {y}")
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


def blank(path: Path, min_ink: float = 0.005) -> str | None:
    """Why the screenshot shows nothing (one colour, or almost), or None when it shows a page."""
    width, height, channels, rows = png_rows(path)
    pixels: Counter[bytes] = Counter()
    # Every other pixel of every other row: text is wider than two pixels.
    for row in rows[::2]:
        pixels.update(row[i:i + channels] for i in range(0, len(row), 2 * channels))
    total = sum(pixels.values())
    background, count = pixels.most_common(1)[0]
    ink = 1 - count / total
    if len(pixels) < 3 or ink < min_ink:
        return (f"{path} is blank: {len(pixels)} colour(s), {ink:.2%} of its {width}×{height} "
                f"pixels differ from the background {background.hex()}")
    return None


# --- the page the browser built -----------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        #: id of each <section> -> the text of its first <h2>
        self.headings: dict[str, str] = {}
        self._section: str | None = None
        self._h2: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "section":
            self._section = values.get("id")
        if tag == "h2" and self._section and self._section not in self.headings:
            self._h2 = []

    def handle_data(self, data: str) -> None:
        if self._h2 is not None:
            self._h2.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._h2 is not None and self._section:
            self.headings[self._section] = " ".join("".join(self._h2).split())
            self._h2 = None


def parse(dom: str) -> _Page:
    page = _Page()
    page.feed(dom)
    return page


def page_problems(dom: str, rows: Iterable[Row], out_dir: Path) -> list[str]:
    """What an auditor would miss in the page: one sentence each; empty when nothing."""
    page = parse(dom)
    problems = []
    for row in rows:
        heading = page.headings.get(row.anchor)
        if heading is None:
            problems.append(f"Art. {row.article}: no section #{row.anchor} with a heading")
        elif not heading.startswith(f"Art. {row.article}:"):
            problems.append(f"Art. {row.article}: its section's heading is {heading!r}")
        if f"#{row.anchor}" not in page.hrefs:
            problems.append(f"Art. {row.article}: the contents do not link #{row.anchor}")
    for href in sorted(set(page.hrefs)):
        if href.startswith("#"):
            if href[1:] not in page.ids:
                problems.append(f"the link {href} lands on no element of the page")
        elif re.match(r"^[a-z][a-z0-9+.-]*:", href):
            problems.append(f"the link {href} leaves the report (it must be self-contained)")
        else:
            target = (Path(out_dir) / unquote(href.partition("#")[0])).resolve()
            if not target.exists():
                problems.append(f"the link {href} names {target}, which does not exist")
    if not re.search(r"<h1[^>]*>\s*Audit report", dom):
        problems.append("the page has no 'Audit report' title (h1)")
    return problems


def check_report(html: Path, rows: Iterable[Row], png: Path | None = None) -> tuple[Path, list[str]]:
    """Open the report in Chromium, save its screenshot (report.png beside it), and say
    what is wrong with what the browser shows: blank, or an article or a link amiss."""
    page = open_report(html, png or Path(html).with_suffix(".png"))
    problems = [p for p in [blank(page.png)] if p]
    return page.png, problems + page_problems(page.dom, rows, Path(html).parent)
