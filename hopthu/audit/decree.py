"""Read the decree's article list and control IDs from DECREE.md.

DECREE.md (../shared/ beside the checkout) summarises Decision 290/QĐ-BTP in
one table: article, what the text says, what the mail hosts must do, and
the control IDs. The report has one section per row, in the decree's order,
so an auditor finds "Art. 11.6" where the decree puts it. An ID may appear
in several rows (ART5-DIRECTORY serves Art. 5 and 11.4); its details sit in
the first, and the others point there.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from hopthu import ROOT

#: The decree article by article with its control IDs: the project's copy of
#: ../shared/DECREE.md, kept with the map it is checked against
#: (tests/unit/test_controls.py fails when the two differ).
DECREE_FILE = ROOT / "compliance" / "decree" / "DECREE.md"

#: The control ID form DECREE.md uses (the same as tests/unit/test_controls.py).
ID_RE = re.compile(r"\bART\d+(?:-\d+)?(?:-[A-Z]+)+\b")
#: "1", "11.6", "11.8–11.9", "15–16"
ARTICLE_RE = re.compile(r"^\d+(?:\.\d+)?(?:\s*[–-]\s*\d+(?:\.\d+)?)?$")


class DecreeError(ValueError):
    """DECREE.md cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Row:
    """One row of DECREE.md's table: an article, or a clause or range of them."""

    article: str
    says: str
    hosts_must: str
    control_ids: tuple[str, ...]

    @property
    def anchor(self) -> str:
        return anchor(self.article)

    def parts(self) -> list[tuple[str, str]]:
        """(article, clause) for each end of the row: "11.8–11.9" -> [(11, 8), (11, 9)]."""
        return [tuple((p.strip().split(".") + [""])[:2])  # type: ignore[misc]
                for p in re.split(r"[–-]", self.article)]

    def heading(self, titles: dict[str, str], clause_word: str, article_word: str = "") -> str:
        """The row's title from per-article `titles`: a clause range under one
        article is that article's title with the clauses ("Duties (clause 6)");
        a range of articles lists each one. With `article_word` each title is
        numbered the way the original is: "Điều 11. Trách nhiệm ...".
        """
        parts = self.parts()
        bases = list(dict.fromkeys(base for base, _ in parts))
        clauses = "–".join(c for _, c in parts if c)

        def one(base: str) -> str:
            number = f"{article_word} {base}. " if article_word else ""
            return f"{number}{titles.get(base, '')}".strip()

        if len(bases) == 1 and clauses:
            return f"{one(bases[0])} ({clause_word} {clauses})"
        return "; ".join(one(b) for b in bases)


def anchor(article: str) -> str:
    """The HTML id of an article's section: "11.6" -> "art-11-6"."""
    return "art-" + "-".join(re.findall(r"\d+", article))


def _cell(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def load(path: Path = DECREE_FILE) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DecreeError(
            f"{path}: cannot read the decree's control list ({exc.strerror}). The checkout "
            "keeps it as compliance/decree/DECREE.md; or give its path with --decree FILE"
        ) from exc
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            continue
        cells = [c for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not ARTICLE_RE.match(cells[0].strip()):
            continue  # the header, its rule, or prose
        ids = tuple(dict.fromkeys(ID_RE.findall(cells[3])))
        if not ids and cells[3].strip() not in ("—", "-", ""):
            raise DecreeError(f"{path}, line {number}: the control IDs column has "
                              f"{cells[3].strip()!r}; write IDs like ART11-6-AV, or —")
        rows.append(Row(_cell(cells[0]), _cell(cells[1]), _cell(cells[2]), ids))
    if not rows:
        raise DecreeError(f"{path}: no article table found (rows '| Art. | ... | Control IDs |')")
    return rows
