"""Render hopthu's templates exactly as Ansible's ``template`` action does.

Both engines render the same files from ``templates/`` (DESIGN.md §2):
Ansible with ``ansible.builtin.template``, pyinfra with this module and
``files.put``. ``tests/unit/test_template_parity.py`` renders every template
for every host of every inventory with both and requires identical bytes.

    from hopthu.render import render
    text = render("etc/ssh/sshd_config.j2", settings.values)

What this module matches, and where Ansible 2.19 does it
---------------------------------------------------------
(paths under ``ansible/``; line numbers are from ansible-core 2.19.14)

- ``trim_blocks=True``, ``lstrip_blocks=False``, ``newline_sequence="\\n"``:
  the action's defaults (plugins/action/template.py:59-60, 68) passed as
  overrides (template.py:126-136); ``AnsibleEnvironment`` also forces
  ``trim_blocks`` (_internal/_templating/_jinja_bits.py:580).
- Trailing newlines: Jinja runs with ``keep_trailing_newline=False`` (so an
  included partial loses its last newline), then the engine appends the
  newlines the *source* ends with that the result lacks
  (_internal/_templating/_engine.py:389-407, ``_post_render_mutation``).
  ``_render_text`` below does the same.
- ``None`` output as "": Ansible's ``concat`` drops ``None`` nodes
  (_jinja_bits.py:894-895) and the action turns a ``None`` result into ""
  (template.py:141-142). Here ``finalize`` maps ``None`` to "". Only a
  ``{{ }}`` of ``None`` is affected: ``[none]`` still prints ``[None]``.
- Containers printed with ``{{ }}``: Ansible finalizes the nodes before
  joining them (_jinja_bits.py:750-756, 1016-1019, 1071-1090): tuples become lists
  (``{{ d | dictsort }}`` prints ``[['a', 1]]``), then ``str()`` gives the
  Python repr. ``_finalize`` does the same conversion.
- Iterators: the output of every filter and of every call (``d.items()``,
  ``x | map('upper')``) is turned into a list (_jinja_plugins.py:33, 122, 350-355;
  _jinja_bits.py:842-848), so ``{{ x | unique }}`` prints a list, not
  ``<generator ...>``. ``_Environment.call`` and ``_wrap_filter`` do the same.
- ``StrictUndefined``: Ansible's ``Marker`` is a ``StrictUndefined``
  (_internal/_templating/_jinja_common.py:56); using an undefined value in
  any way fails, ``is defined`` and ``default()`` still work.
- Sandbox: ``AnsibleEnvironment`` is a ``SandboxedEnvironment`` with the real
  ``range`` (_jinja_bits.py:535, 586); so is ours.
- No autoescape (_jinja_bits.py:578), no extensions (ansible.cfg sets none;
  ``DEFAULT_JINJA2_EXTENSIONS`` is empty), Jinja's default delimiters.
- Search path for ``{% include %}``/``{% import %}``: Ansible searches the
  role's and the playbook's ``templates/`` (template.py:106-120), which for
  hopthu is the top-level ``templates/``. hopthu searches only that
  directory, so partials are named from there: ``_partials/x.j2``.
- UTF-8 source, read strictly (parsing/dataloader.py:166-183).
- Filters: Jinja2's built-ins plus every ``filter_plugins/*.py`` module's
  ``FilterModule().filters()``, loaded by file path (``load_filters``), the
  way Ansible's plugin loader loads them. Loading by path needs no
  ``sys.path`` change, does not depend on the working directory, and runs
  the very file Ansible runs. (``filter_plugins/`` sits beside ``hopthu/``
  in the checkout: hopthu runs from the repository, as Ansible does.)

The managed header
------------------
Every template starts with the header, rendered by one filter in one form:

    {{ 'etc/ssh/sshd_config.j2' | managed_header('common') }}
    # (then the file's own content)

and ``managed_header(path, role, comment)`` takes ``'//'``, ``';'``,
``'--'``, ``'/*'`` or ``'<!--'`` for other comment syntaxes. A filter rather
than a partial macro: one expression, no ``import`` line, and it renders
the same in both engines (the parity test proves it, and checks that the
path a template gives is its own). A file whose format has no comments
(the MTA-STS policy, RFC 8461 §3.2) says so in a Jinja comment on its first
line, ``{# no-managed-header: <why> #}``; the parity test accepts that and
nothing else. After a ``#!`` or ``<?xml ?>`` line, the header comes second.

Banned constructs (they render differently in the two engines, or tie a
template to Ansible)
--------------------------------------------------------------------------------
1. Ansible-only filters and tests: ``to_nice_yaml``, ``to_json``, ``bool``,
   ``regex_replace``, ``ternary``, ``combine``, ``ipaddr``, ``version``... —
   unknown here, so the template fails to compile ("No filter named ...").
   Jinja2 has ``tojson``, ``replace``, ``selectattr``; Python's string
   methods (``x.split(',')``) work in both. ``random`` and ``shuffle`` are
   out anyway: a second run must render the same bytes.
2. Ansible magic and connection variables: ``inventory_hostname``,
   ``group_names``, ``hostvars``, ``ansible_*`` (facts included),
   ``ansible_managed``, ``template_*``, ``omit``, and the functions
   ``lookup``/``query``/``q``/``now``/``undef``. Read a role variable that
   the settings resolve instead (``common__host_groups``). Undefined here, so
   rendering fails and the error says the name is Ansible's.
3. Using the value of a ``{% set x %}...{% endset %}`` block or of a macro
   call as anything but output. Ansible compiles templates in native mode,
   so such a value can be an int or a list there (``x + 1``, ``x is string``
   and ``x | length`` differ); printing it gives the same text in both.
4. A template that is a single ``{{ expression }}`` and nothing else: Ansible
   then writes the value's ``str()`` without the trailing newline. Every
   template has its header and text, so this does not arise.
5. A ``#jinja2:`` override line at the top (rejected here): one set of
   Jinja settings for every template keeps them auditable.
6. Include/import names relative to the including template, or starting
   with ``templates/``: Ansible would find some of those, hopthu does not.
7. Variable values that contain ``{{``, ``{%`` or ``{#``: Ansible templates
   them again when they are read; settings resolve references first, so a
   value reaching a template must be plain data.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from hopthu import ROOT

#: The top-level templates directory, next to site.yml (Ansible's search path).
TEMPLATES_DIR = ROOT / "templates"
#: Where Ansible's ansible.cfg points ``filter_plugins``.
FILTER_PLUGINS_DIR = ROOT / "filter_plugins"

#: What Ansible 2.19 turns into a list when a filter or call returns it
#: (_internal/_templating/_jinja_plugins.py:33).
_ITERATOR_TYPES = (cabc.Iterator, cabc.ItemsView, cabc.KeysView, cabc.ValuesView, range)

#: Ansible's magic variables (and globals) a template might reach for; named
#: in the error so that the fix is obvious.
ANSIBLE_ONLY_NAMES = frozenset(
    {
        "ansible_managed",
        "group_names",
        "groups",
        "hostvars",
        "inventory_dir",
        "inventory_file",
        "inventory_hostname",
        "inventory_hostname_short",
        "lookup",
        "now",
        "omit",
        "play_hosts",
        "playbook_dir",
        "q",
        "query",
        "role_name",
        "role_path",
        "undef",
    }
)


class RenderError(Exception):
    """A template failed to render. ``str()`` names the template, the line and the cause."""

    def __init__(
        self,
        template: str,
        line: int | None,
        message: str,
        *,
        where: str | None = None,
        directory: str = "templates",
    ):
        self.template = template
        self.line = line
        self.message = message
        #: The template file the error is in, when it is a partial of `template`.
        self.where = where or template
        at = f"{directory}/{self.where}" + (f", line {line}" if line else "")
        if self.where != template:
            at += f" (included by {directory}/{template})"
        super().__init__(f"{at}: {message}")


# --- Filters ----------------------------------------------------------------------


def load_filters(directory: Path = FILTER_PLUGINS_DIR) -> dict[str, Callable[..., Any]]:
    """Every filter of ``directory/*.py``, loaded by path as Ansible loads them."""
    filters: dict[str, Callable[..., Any]] = {}
    origin: dict[str, str] = {}
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        name = f"hopthu._filter_plugins.{path.stem}"
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != str(path):
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"{path}: cannot be loaded as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        plugin = getattr(module, "FilterModule", None)
        if plugin is None:
            continue
        for filter_name, func in plugin().filters().items():
            if filter_name in filters:
                raise ImportError(
                    f"filter {filter_name!r} is defined in both {origin[filter_name]} and "
                    f"{path.name}; Ansible would pick one at random, so rename one"
                )
            filters[filter_name] = func
            origin[filter_name] = path.name
    return filters


def _listify(value: Any) -> Any:
    return list(value) if isinstance(value, _ITERATOR_TYPES) else value


def _wrap_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose iterator result becomes a list, as in Ansible."""

    @functools.wraps(func)  # keeps jinja_pass_arg (pass_environment/pass_context)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _listify(func(*args, **kwargs))

    return wrapper


# --- Environment --------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Ansible's finalize of a printed value: exact dicts/lists/tuples, recursively."""
    kind = type(value)
    if kind is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    return value


def _finalize(value: Any) -> Any:
    """Applied to every ``{{ }}`` result: None prints as "", containers as Ansible prints them."""
    if value is None:
        return ""
    return _plain(value)


def _ansible_only(name: str) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise jinja2.TemplateRuntimeError(
            f"{name}() is an Ansible-only function; hopthu templates use Jinja2 built-ins "
            f"and filter_plugins/ only (see hopthu/render.py)"
        )

    return fail


class _Environment(SandboxedEnvironment):
    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        result = super().call(context, obj, *args, **kwargs)
        if obj is range:  # Ansible keeps range() lazy (_jinja_bits.py:842)
            return result
        return _listify(result)


@functools.lru_cache(maxsize=8)
def _environment(templates_dir: str, filter_dir: str) -> _Environment:
    env = _Environment(
        loader=jinja2.FileSystemLoader(templates_dir, encoding="utf-8", followlinks=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=False,
        keep_trailing_newline=False,  # Ansible re-adds the source's newlines itself
        newline_sequence="\n",
        finalize=_finalize,
        autoescape=False,
        auto_reload=True,
    )
    filters = dict(env.filters)
    for name, func in load_filters(Path(filter_dir)).items():
        if name in filters:
            raise ImportError(
                f"filter_plugins/ defines {name!r}, a Jinja2 built-in filter; Ansible would use "
                f"the plugin and hopthu must render the same, so rename it"
            )
        filters[name] = func
    env.filters = {name: _wrap_filter(func) for name, func in filters.items()}
    env.globals["range"] = range
    for name in ("lookup", "query", "q", "now", "undef"):
        env.globals[name] = _ansible_only(name)
    return env


def environment(
    templates_dir: str | Path | None = None,
    filter_dir: str | Path | None = None,
) -> jinja2.Environment:
    """The shared, cached Jinja2 environment (Ansible's settings, our filters).

    `templates_dir` defaults to the top-level ``templates/``; the tests point
    it at their fixtures.
    """
    return _environment(
        str(Path(templates_dir or TEMPLATES_DIR).resolve()),
        str(Path(filter_dir or FILTER_PLUGINS_DIR).resolve()),
    )


# --- Rendering ----------------------------------------------------------------------


def _count_newlines_from_end(text: str) -> int:
    """Ansible's TemplateEngine._count_newlines_from_end (_engine.py:166-183)."""
    return len(text) - len(text.rstrip("\n"))


def _template_line(tb: TracebackType | None, base: Path) -> tuple[str | None, int | None]:
    """The innermost template frame of a traceback: (name under `base`, line).

    Jinja rewrites tracebacks so that a template's frames carry the
    template's file name and line (jinja2/debug.py).
    """
    found: tuple[str | None, int | None] = (None, None)
    prefix = f"{base}{os.sep}"
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(prefix):
            found = (filename[len(prefix) :], tb.tb_lineno)
        tb = tb.tb_next
    return found


def _explain(exc: BaseException) -> str:
    message = str(exc) if str(exc) else type(exc).__name__
    if isinstance(exc, jinja2.TemplateAssertionError) and message.startswith(
        ("No filter named", "No test named")
    ):
        return (
            f"{message} Only Jinja2's built-in filters and tests and those in filter_plugins/ "
            f"exist here; Ansible-only ones (to_nice_yaml, bool, regex_replace, version...) "
            f"render differently in pyinfra, so they are not allowed (hopthu/render.py)."
        )
    if isinstance(exc, jinja2.UndefinedError):
        name = message.split("'")[1] if message.count("'") >= 2 else ""
        if name in ANSIBLE_ONLY_NAMES or name.startswith(("ansible_", "template_")):
            return (
                f"{message}: {name!r} is an Ansible magic or connection variable; templates "
                f"read role variables resolved by hopthu.settings instead (hopthu/render.py)"
            )
        return f"{message} (is it set in group_vars/ or the role's defaults?)"
    if isinstance(exc, (jinja2.TemplateError, ValueError, TypeError)):
        return message
    return f"{type(exc).__name__}: {message}"


def template_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a template may see: all but Ansible's own names.

    Settings may carry ``ansible_host`` or ``group_names`` (they resolve role
    variables from them); templates must not read them (banned construct 2),
    so they are left out here and such a template fails in both engines'
    parity test instead of silently working in one.
    """
    return {
        name: value
        for name, value in variables.items()
        if name not in ANSIBLE_ONLY_NAMES and not name.startswith(("ansible_", "template_"))
    }


def _render_text(env: jinja2.Environment, template: str, variables: Mapping[str, Any]) -> str:
    loader = env.loader
    assert loader is not None
    source, _filename, _uptodate = loader.get_source(env, template)
    if source.startswith("#jinja2:"):
        raise RenderError(
            template,
            1,
            "'#jinja2:' override lines are not allowed; all templates share one set of "
            "Jinja2 settings (hopthu/render.py)",
        )
    text = env.get_template(template).render(template_variables(variables))
    # Ansible's _post_render_mutation: give back the newlines the source ends with.
    missing = _count_newlines_from_end(source) - _count_newlines_from_end(text)
    if missing > 0:
        text += env.newline_sequence * missing
    return text


def render(
    template: str,
    variables: Mapping[str, Any],
    *,
    templates_dir: str | Path | None = None,
) -> str:
    """Render `template` (a path under ``templates/``, e.g. "etc/ssh/sshd_config.j2").

    `variables` are a host's resolved settings (``hopthu.settings``). Raises
    ``RenderError`` naming the template, the line and the cause: an undefined
    variable, an unknown (Ansible-only) filter, a filter's own error.
    """
    env = environment(templates_dir)
    base = Path(templates_dir or TEMPLATES_DIR).resolve()
    label = os.path.relpath(base, ROOT) if base.is_relative_to(ROOT) else str(base)
    try:
        return _render_text(env, template, variables)
    except RenderError:
        raise
    except jinja2.TemplateNotFound as exc:
        missing = exc.name or template
        raise RenderError(
            template,
            None,
            f"template {missing!r} not found in {label}/ (a partial is named from there, "
            f"e.g. '_partials/x.j2')",
            directory=label,
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        where = exc.name or template
        raise RenderError(
            template, exc.lineno, _explain(exc), where=where, directory=label
        ) from exc
    except Exception as exc:  # every cause is reported with its place
        where, line = _template_line(exc.__traceback__, base)
        raise RenderError(template, line, _explain(exc), where=where, directory=label) from exc
