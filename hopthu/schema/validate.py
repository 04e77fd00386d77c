"""Check a host's resolved variables against the models, and say what is wrong in words."""

from __future__ import annotations

import difflib
import inspect
import types
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import MinLen
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from hopthu.schema.base import REGISTRY, SettingsModel
from hopthu.schema.types import Form

#: Prefixes of variables that are not settings and are not checked here.
FREE_PREFIXES = ("ansible_", "vault_", "_")


class _Nothing:
    def __repr__(self) -> str:
        return "<nothing>"


#: The value of a missing key.
MISSING: Any = _Nothing()


@dataclass(frozen=True)
class Problem:
    """A bad, unknown or missing variable."""

    #: the top-level variable
    key: str
    #: the variable and the path inside its value: `key.group.zone[1]`
    path: str
    value: Any
    message: str
    allowed: str
    #: "value" (bad value), "missing" (not set), "null" (set to null),
    #: "unknown" (a key no model has)
    kind: str = "value"


def validate(
    values: Mapping[str, Any],
    roles: Collection[str],
    *,
    known_roles: Collection[str] = (),
) -> tuple[list[Problem], SettingsModel | None]:
    """Every problem of `values` (unknown keys, bad values, missing keys), and the host model.

    `roles` are the roles applied to the host: their namespaces, and the
    project-wide ones, must be complete; together they make the host's model,
    returned validated when there is no problem in them. Keys of other roles'
    namespaces that are present are checked one by one. `known_roles` are the
    roles of the project tree, to tell a role without a model from a
    misspelled prefix.
    """
    problems: list[Problem] = []
    by_namespace: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key.startswith(FREE_PREFIXES):
            continue
        namespace, sep, rest = key.partition("__")
        model = REGISTRY.get(namespace) if sep and rest else None
        if model is None:
            problems.append(_unknown_prefix(key, value, namespace if sep else "", known_roles))
        elif key not in model.model_fields:
            problems.append(_misspelled(model, key, value))
        else:
            by_namespace.setdefault(namespace, {})[key] = value
    applied = tuple(ns for ns in namespaces() if ns in roles or not REGISTRY[ns].is_role)
    host = host_model(applied)
    present = {k: v for ns in applied for k, v in by_namespace.get(ns, {}).items()}
    instance: SettingsModel | None = None
    try:
        instance = host.model_validate(present)
    except ValidationError as exc:
        problems.extend(_problem(host, error, present) for error in exc.errors())
    else:
        for ns in applied:
            for check in REGISTRY[ns].cross_checks(instance):
                problems.append(Problem(str(check.path[0]), render_path(check.path),
                                        check.value, check.message, check.allowed))
    for ns in namespaces():
        if ns not in applied:
            for key, value in by_namespace.get(ns, {}).items():
                problems.extend(_validate_field(REGISTRY[ns], key, value))
    return problems, instance if not problems else None


@lru_cache(maxsize=64)
def host_model(names: tuple[str, ...]) -> type[SettingsModel]:
    """One model for a host: the models of the namespaces `names`, composed."""
    bases = tuple(REGISTRY[name] for name in names) or (SettingsModel,)

    def body(ns: dict[str, Any]) -> None:
        ns.update(namespace="", __module__=__name__, __doc__="The settings of one host.")

    return types.new_class("HostSettings", bases, exec_body=body)


def namespaces() -> list[str]:
    return sorted(REGISTRY)


def field_type(model: type[BaseModel], name: str) -> Any:
    """A field's annotation with its constraints (min_length...) attached."""
    info: FieldInfo = model.model_fields[name]
    if info.metadata:
        return Annotated[(info.annotation, *info.metadata)]  # type: ignore[return-value]
    return info.annotation


def _unknown_prefix(key: str, value: Any, prefix: str, known_roles: Collection[str]) -> Problem:
    allowed = (
        "a role's variable ("
        + ", ".join(f"{ns}__*" for ns in namespaces() if REGISTRY[ns].is_role)
        + "), hopthu__* for project-wide values, vault_* for secrets, "
        "or ansible_* for connection variables"
    )
    if prefix and prefix in known_roles:
        message = (f"the role {prefix} has no settings model: add one in "
                   f"hopthu/schema/{prefix}.py (one field per key of its defaults)")
    else:
        message = "unknown variable: its name has no known prefix"
        guess = difflib.get_close_matches(prefix or key.split("_")[0], namespaces(), n=1)
        if prefix and guess:
            message += f"; did you mean the prefix {guess[0]}__?"
    return Problem(key, key, value, message, allowed, "unknown")


def _misspelled(model: type[SettingsModel], key: str, value: Any) -> Problem:
    fields = list(model.model_fields)
    guess = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
    where = (f"roles/{model.namespace}/defaults/main.yml" if model.is_role
             else "group_vars/README.md")
    message = f"unknown {model.namespace} variable"
    if guess:
        message += f"; did you mean {guess[0]}?"
    return Problem(key, key, value, message, f"a variable of {where}", "unknown")


def _validate_field(model: type[SettingsModel], key: str, value: Any) -> list[Problem]:
    tp = field_type(model, key)
    # A mapping with its own model (a Strict subclass) is strict already, and
    # pydantic refuses a config for it.
    adapter = (TypeAdapter(tp) if _is_model(_strip(tp))
               else TypeAdapter(tp, config=ConfigDict(strict=True)))
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        return [
            _problem(model, {**error, "loc": (key, *error["loc"])}, {key: value})
            for error in exc.errors()
        ]
    return []


def _problem(model: type[SettingsModel], error: Any, present: Mapping[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    key = str(loc[0])
    path = render_path(loc)
    tp = type_at(field_type(model, key), loc[1:]) if key in model.model_fields else Any
    allowed = describe(tp)
    kind = error["type"]
    value = error.get("input", MISSING)
    if kind == "missing":
        if len(loc) == 1:
            return Problem(key, path, MISSING, "is not set", allowed, "missing")
        return Problem(key, path, MISSING, f"lacks the key {loc[-1]!r}", allowed)
    if len(loc) == 1 and present.get(key, MISSING) is None:
        return Problem(key, path, None, "is empty (null)", allowed, "null")
    if kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind == "extra_forbidden":
        parent = type_at(field_type(model, key), loc[1:-1])
        names = list(_strip(parent).model_fields) if _is_model(_strip(parent)) else []
        guess = difflib.get_close_matches(str(loc[-1]), names, n=1)
        message = f"is not a known key{f'; did you mean {guess[0]!r}?' if guess else ''}"
        allowed = describe(parent)
    elif kind == "too_short":
        need = error["ctx"]["min_length"]
        if isinstance(value, str):
            message = "is empty"
        else:
            message = f"has {error['ctx']['actual_length']} items, fewer than the {need} required"
    elif kind == "literal_error":
        message = "is not one of the allowed values"
    elif kind.endswith("_type"):
        message = f"is {_yaml_kind(value)}, which is the wrong type"
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    return Problem(key, path, value, message, allowed)


def render_path(loc: Iterable[Any]) -> str:
    """`("k", "mail_mx", "internet", 1)` -> `k.mail_mx.internet[1]`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            text += " (the key)"
        elif not text:
            text = str(part)
        elif str(part).replace("_", "a").replace("-", "a").isalnum():
            text += f".{part}"
        else:
            text += f"[{part!r}]"
    return text


def type_at(tp: Any, loc: Iterable[Any]) -> Any:
    """The type of the value at `loc` inside a value of type `tp`."""
    for part in loc:
        base = _strip(tp)
        origin = get_origin(base)
        args = get_args(base)
        if origin is list and isinstance(part, int):
            tp = args[0]
        elif origin is dict:
            tp = args[0] if part == "[key]" else args[1]
        elif _is_model(base) and part in base.model_fields:
            tp = field_type(base, part)
        else:
            break
    return tp


def describe(tp: Any) -> str:
    """The allowed form of a type, in words."""
    forms = [m for m in _metadata(tp) if isinstance(m, Form)]
    if forms:
        return forms[-1].text
    minimum = next((m.min_length for m in _metadata(tp) if isinstance(m, MinLen)), 0)
    base = _strip(tp)
    origin = get_origin(base)
    args = get_args(base)
    if base is bool:
        return "true or false"
    if base is int:
        return "a whole number"
    if base is str:
        return "a string"
    if base is Any:
        return "any value"
    if origin is Literal:
        return "one of: " + ", ".join(_literal(a) for a in args)
    if origin is list:
        at_least = f" (at least {minimum})" if minimum else ""
        return f"a list{at_least} of items, each {describe(args[0])}"
    if origin is dict:
        return f"a mapping of keys, each {describe(args[0])}, to values, each {describe(args[1])}"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if _is_model(base):
        keys = "; ".join(f"{name}: {describe(field_type(base, name))}"
                         for name in base.model_fields)
        return f"a mapping with exactly the keys {{{keys}}}"
    return getattr(base, "__name__", str(base))


def _metadata(tp: Any) -> list[Any]:
    if get_origin(tp) is Annotated:
        return [*_metadata(get_args(tp)[0]), *tp.__metadata__]
    return []


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _literal(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"
