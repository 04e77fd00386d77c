"""Render the audit's model as report.html and report.md.

Both come from Jinja2 templates beside this module (templates/), which read
like the reports they make. The HTML is one self-contained file: inline CSS,
no script, no external resource, autoescaped throughout; the Markdown
escapes what would otherwise turn into markup (code spans for test names,
fenced blocks for failure messages).

Links point from the report's directory into the checkout with relative
paths, so the files open from the report in a browser. The output depends
only on the model and that directory: the same inputs give the same bytes,
except the generated-at stamp the model carries.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape

from hopthu import ROOT
from hopthu.audit.join import Audit

TEMPLATES = Path(__file__).with_name("templates")


def _inline_html(text: str) -> Markup:
    """The decree's and the map's own light markup (**bold**, `code`), escaped first."""
    escaped = str(escape(text))
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return Markup(escaped)


def _md_text(text: str) -> str:
    """Prose for Markdown: keep its **bold** and `code`, neutralise HTML, links and pipes."""
    return re.sub(r"([\\<>\[\]|])", r"\\\1", " ".join(str(text).split()))


def _md_code(text: str) -> str:
    """A code span that holds any text, safe inside a table cell."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_block(text: str) -> str:
    """A fenced block that no line of `text` can close."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def environment(out_dir: Path, *, html: bool) -> jinja2.Environment:
    out = out_dir.resolve()

    def link(path: str | Path) -> str:
        """A relative URL from the report to a file (a repo path or an absolute one)."""
        target = Path(path)
        target = target if target.is_absolute() else ROOT / target
        return quote(Path(os.path.relpath(target, out)).as_posix(), safe="/._-~")

    def test_file(nodeid: str) -> str:
        return nodeid.partition("::")[0]

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        link=link, test_file=test_file, seconds=_seconds, inline=_inline_html,
        md=_md_text, md_code=_md_code, md_block=_md_block,
        css=lambda text: re.sub(r"[^a-z]+", "-", str(text).lower()).strip("-"),
    )
    return env


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def render_html(audit: Audit, out_dir: Path) -> str:
    return _nfc(environment(out_dir, html=True).get_template("report.html.j2").render(a=audit))


def render_markdown(audit: Audit, out_dir: Path) -> str:
    return _nfc(environment(out_dir, html=False).get_template("report.md.j2").render(a=audit))
