"""Read compliance/controls.yml, the map decree article -> control -> code -> tests.

The file's header documents every key; tests/unit/test_controls.py keeps it
honest against DECREE.md and the tests. This module only reads it into typed
objects, and stops with the file and the key when the shape is wrong, so a
broken map never becomes a half-written report.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hopthu import ROOT

CONTROLS_FILE = ROOT / "compliance" / "controls.yml"
STATUSES = ("implemented", "planned", "not-applicable")


class ControlsError(ValueError):
    """controls.yml cannot be read; the message names the file and the key."""


@dataclass(frozen=True)
class Place:
    """A file that enforces a control, and what it does there."""

    path: str
    what: str


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    requirement: str
    status: str
    #: The controls.yml article the control is listed under.
    article: str
    reason: str = ""
    progress: str = ""
    remaining: str = ""
    implemented_in: tuple[Place, ...] = ()
    tasks: tuple[str, ...] = ()
    #: pytest node ids without parameters.
    tests: tuple[str, ...] = ()


@dataclass(frozen=True)
class Article:
    number: str
    title: str
    title_vi: str = ""
    summary: str = ""
    note: str = ""
    also_articles: tuple[str, ...] = ()
    control_ids: tuple[str, ...] = ()


@dataclass
class ControlsMap:
    path: Path
    articles: dict[str, Article] = field(default_factory=dict)
    controls: dict[str, Control] = field(default_factory=dict)


def _text(value: Any) -> str:
    """A YAML scalar as NFC text, folded whitespace collapsed."""
    if value is None:
        return ""
    return unicodedata.normalize("NFC", " ".join(str(value).split()))


def load(path: Path = CONTROLS_FILE) -> ControlsMap:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ControlsError(f"{path}: cannot read the compliance map: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ControlsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("articles"), list):
        raise ControlsError(f"{path}: the top level must be a mapping with a list 'articles'")
    result = ControlsMap(path=path)
    for index, raw in enumerate(data["articles"]):
        where = f"{path}: articles[{index}]"
        if not isinstance(raw, dict) or "article" not in raw:
            raise ControlsError(f"{where}: each article is a mapping with 'article' and 'title'")
        number = str(raw["article"])
        ids = []
        for c_index, c in enumerate(raw.get("controls") or []):
            control = _control(c, number, f"{where} (article {number}).controls[{c_index}]")
            if control.id in result.controls:
                raise ControlsError(f"{path}: {control.id} is listed twice; list it once, "
                                    "under the article that introduces it")
            result.controls[control.id] = control
            ids.append(control.id)
        result.articles[number] = Article(
            number=number,
            title=_text(raw.get("title")),
            title_vi=_text(raw.get("title_vi")),
            summary=_text(raw.get("summary")),
            note=_text(raw.get("note")),
            also_articles=tuple(str(a) for a in raw.get("also_articles") or []),
            control_ids=tuple(ids),
        )
    return result


def _control(raw: Any, article: str, where: str) -> Control:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise ControlsError(f"{where}: each control is a mapping with an 'id'")
    status = raw.get("status")
    if status not in STATUSES:
        raise ControlsError(f"{where} ({raw['id']}): status {status!r} is not one of "
                            f"{', '.join(STATUSES)}")
    places = []
    for place in raw.get("implemented_in") or []:
        if isinstance(place, dict) and place.get("path"):
            places.append(Place(str(place["path"]), _text(place.get("what"))))
        elif isinstance(place, str):
            places.append(Place(place, ""))
        else:
            raise ControlsError(f"{where} ({raw['id']}).implemented_in: each entry is "
                                "{path: ..., what: ...}")
    return Control(
        id=str(raw["id"]),
        title=_text(raw.get("title")),
        requirement=_text(raw.get("requirement")),
        status=status,
        article=article,
        reason=_text(raw.get("reason")),
        progress=_text(raw.get("progress")),
        remaining=_text(raw.get("remaining")),
        implemented_in=tuple(places),
        tasks=tuple(_text(t) for t in raw.get("tasks") or []),
        tests=tuple(str(t) for t in raw.get("tests") or []),
    )
