"""Resolve `{{ }}` references between variables the way Ansible 2.19 does.

Ansible 2.19 templates a variable when it is used, recursively, with strict
undefined checks. The result of a string that is exactly one `{{ expr }}` is
the expression's native value (a list stays a list, an int an int, no string
is re-parsed into a number); a string that mixes text and expressions is a
string, with `None` parts left out. Jinja string constants inside `{{ }}`
keep their backslashes (YAML already processed them), and trailing newlines
of the source string are kept.

The environment here is Jinja2's sandbox with those rules, the Jinja2
built-ins and the filters of `filter_plugins/`: Ansible's own filters and
lookups are deliberately absent, because the pyinfra side has only these.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, pass_context
from jinja2.lexer import TOKEN_STRING, TOKEN_VARIABLE_BEGIN, TOKEN_VARIABLE_END, Lexer
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.runtime import Undefined
from jinja2.sandbox import SandboxedEnvironment

from hopthu.settings.files import Unsafe, VarsFileError, Vaulted, VaultError, decrypt

_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def is_template(value: str) -> bool:
    return any(marker in value for marker in _TEMPLATE_MARKERS)


# --- The environment -----------------------------------------------------------------


class _CodeGenerator(NativeCodeGenerator):
    def _output_const_repr(self, group: Any) -> str:
        # As Ansible's AnsibleCodeGenerator: a lone constant keeps its type.
        items = list(group)
        if len(items) == 1:
            return repr(items[0])
        return repr("".join(map(str, items)))


class _Lexer(Lexer):
    """Keep backslashes in string constants inside `{{ }}` (Ansible's AnsibleLexer)."""

    def tokeniter(self, *args: Any, **kwargs: Any) -> Iterator[tuple[int, str, str]]:
        inside = False
        for token in super().tokeniter(*args, **kwargs):
            kind = token[1]
            if kind == TOKEN_VARIABLE_BEGIN:
                inside = True
            elif kind == TOKEN_VARIABLE_END:
                inside = False
            elif inside and kind == TOKEN_STRING:
                token = (token[0], kind, token[2].replace("\\", "\\\\"))
            yield token


@pass_context
def _finalize(_context: Any, value: Any) -> Any:
    # pass_context stops Jinja from folding constants at compile time, as in
    # Ansible, so "a{{ none }}" drops the None instead of printing it.
    return value


def _concat(nodes: Any) -> Any:
    values = [node for node in nodes if node is not None]
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return "".join(str(_check_defined(v)) for v in values)


class VariableEnvironment(SandboxedEnvironment):
    """Jinja2 set up as Ansible 2.19 templates variables."""

    code_generator_class = _CodeGenerator
    concat = staticmethod(_concat)  # type: ignore[assignment]

    def __init__(self, filters: Mapping[str, Callable[..., Any]]):
        super().__init__(trim_blocks=True, undefined=StrictUndefined, finalize=_finalize)
        self.filters.update(filters)
        self.globals["range"] = range  # Ansible uses the real range, not the sandbox's
        self._hopthu_lexer = _Lexer(self)
        self._hopthu_compiled: dict[str, Any] = {}

    @property
    def lexer(self) -> Lexer:  # type: ignore[override]
        return self._hopthu_lexer

    def compiled(self, source: str) -> Any:
        template = self._hopthu_compiled.get(source)
        if template is None:
            template = self._hopthu_compiled[source] = self.from_string(source)
        return template


class FilterPluginError(Exception):
    pass


def load_filters(root: Path) -> dict[str, Callable[..., Any]]:
    """The filters of root/filter_plugins/*.py (Ansible's FilterModule classes)."""
    filters: dict[str, Callable[..., Any]] = {}
    directory = root / "filter_plugins"
    if not directory.is_dir():
        return filters
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        name = f"_hopthu_filter_plugins_{abs(hash(str(directory)))}.{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            plugin = getattr(module, "FilterModule", None)
            if plugin is not None:
                filters.update(plugin().filters())
        except Exception as exc:
            raise VarsFileError(path, f"cannot be loaded as a filter plugin: {exc!r}") from exc
    return filters


@lru_cache(maxsize=16)
def environment(root: Path) -> VariableEnvironment:
    return VariableEnvironment(load_filters(root))


# --- Resolution ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveProblem:
    """A variable that cannot be resolved."""

    key: str
    path: str
    value: Any
    message: str
    allowed: str = ""
    #: the keys of a reference cycle, first key repeated at the end
    cycle: tuple[str, ...] = field(default=())


class _Failed(Exception):
    """Resolution of a key stopped; its problem is already recorded."""


class _Cycle(Exception):
    def __init__(self, keys: list[str]):
        super().__init__(" -> ".join(keys))
        self.keys = keys


UNDEFINED_ALLOWED = (
    "a variable defined in role defaults, group_vars/ or host_vars/, or one of "
    "inventory_hostname, inventory_hostname_short, group_names, groups, inventory_dir, "
    "playbook_dir"
)


class Resolver:
    """Resolve every variable of one host, each once, recursively and lazily."""

    def __init__(
        self,
        raw: Mapping[str, Any],
        context: Mapping[str, Any],
        env: VariableEnvironment,
    ):
        self.raw = raw
        self.context = context
        self.env = env
        self.resolved: dict[str, Any] = {}
        self.problems: list[ResolveProblem] = []
        self._failed: set[str] = set()
        self._stack: list[str] = []
        self._scope = _Scope(self)

    def resolve_all(self) -> dict[str, Any]:
        for key in self.raw:
            try:
                self.value(key)
            except (_Failed, _Cycle):
                pass
        return {key: self.resolved[key] for key in self.raw if key in self.resolved}

    def value(self, key: str) -> Any:
        if key in self.resolved:
            return self.resolved[key]
        if key in self._failed:
            raise _Failed(key)
        if key in self._stack:
            raise _Cycle([*self._stack[self._stack.index(key):], key])
        self._stack.append(key)
        try:
            result = self._resolve(self.raw[key], key, key)
        except _Cycle as cycle:
            self._failed.add(key)
            if cycle.keys[0] != key:
                raise
            what = "refers to itself" if len(cycle.keys) == 2 else "is part of a reference cycle"
            self.problems.append(
                ResolveProblem(
                    key, key, self.raw[key], f"{what}: {' -> '.join(cycle.keys)}",
                    "references that end in a value: break the cycle",
                    tuple(cycle.keys),
                )
            )
            raise _Failed(key) from None
        except _Failed:
            self._failed.add(key)
            raise
        finally:
            self._stack.pop()
        self.resolved[key] = result
        return result

    def _resolve(self, value: Any, key: str, path: str) -> Any:
        if isinstance(value, Unsafe):
            return str(value)
        if isinstance(value, Vaulted):
            try:
                return decrypt(str(value))
            except VaultError as exc:
                self.problems.append(ResolveProblem(key, path, "!vault ...", str(exc)))
                raise _Failed(key) from None
        if isinstance(value, str):
            return self._render(value, key, path) if is_template(value) else str(value)
        if isinstance(value, dict):
            items = [(k, v, f"{path}{_member(k)}") for k, v in value.items()]
            return dict(self._each(items, key))
        if isinstance(value, (list, tuple)):
            items = [(i, v, f"{path}[{i}]") for i, v in enumerate(value)]
            return [v for _, v in self._each(items, key)]
        return value

    def _each(self, items: list[tuple[Any, Any, str]], key: str) -> list[tuple[Any, Any]]:
        """Resolve the members of a container, recording every failing member."""
        done: list[tuple[Any, Any]] = []
        failed = False
        for name, member, path in items:
            try:
                done.append((name, self._resolve(member, key, path)))
            except _Failed:
                failed = True
        if failed:
            raise _Failed(key)
        return done

    def _render(self, source: str, key: str, path: str) -> Any:
        try:
            template = self.env.compiled(source)
        except TemplateSyntaxError as exc:
            self._problem(key, path, source, f"is not a valid Jinja2 template: {exc.message}",
                          "a Jinja2 template such as '{{ other_variable }}'")
        try:
            context = template.new_context(self._scope, shared=True)
            result = _plain(self.env.concat(template.root_render_func(context)))
        except (_Cycle, _Failed):
            raise
        except UndefinedError as exc:
            self._problem(key, path, source, f"refers to something undefined: {exc.message}",
                          UNDEFINED_ALLOWED)
        except Exception as exc:  # noqa: BLE001 - a failing filter is reported like a bad value
            self._problem(key, path, source,
                          f"cannot be resolved: {type(exc).__name__}: {exc}",
                          "a template that evaluates with the Jinja2 built-ins and the "
                          "filters of filter_plugins/")
        if isinstance(result, str):
            missing = _trailing_newlines(source) - _trailing_newlines(result)
            if missing > 0:
                result += "\n" * missing
        return result

    def _problem(self, key: str, path: str, value: Any, message: str, allowed: str) -> NoReturn:
        self.problems.append(ResolveProblem(key, path, value, message, allowed))
        raise _Failed(key)


class _Scope(Mapping[str, Any]):
    """The names a template sees: the base context, the variables (resolved on use), globals."""

    def __init__(self, resolver: Resolver):
        self._resolver = resolver

    def __contains__(self, name: object) -> bool:
        r = self._resolver
        return name in r.context or name in r.raw or name in r.env.globals

    def __getitem__(self, name: str) -> Any:
        r = self._resolver
        if name in r.context:
            return r.context[name]
        if name in r.raw:
            return r.value(name)
        return r.env.globals[name]

    def __iter__(self) -> Iterator[str]:
        r = self._resolver
        return iter({**dict.fromkeys(r.env.globals), **dict.fromkeys(r.raw),
                     **dict.fromkeys(r.context)})

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _check_defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _plain(value: Any) -> Any:
    """A template result as plain data: new containers, no Undefined, no generators."""
    _check_defined(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, types.GeneratorType, map, filter)):
        return [_plain(v) for v in value]
    return value


def _trailing_newlines(text: str) -> int:
    return len(text) - len(text.rstrip("\n"))


def _member(name: Any) -> str:
    text = str(name)
    if text.replace("_", "a").replace("-", "a").isalnum():
        return f".{text}"
    return f"[{name!r}]"
