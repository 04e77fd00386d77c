"""Each Ansible role and its pyinfra deploy have the same shape (DESIGN.md §2).

For every role under roles/ with tasks, hopthu/deploys/<role>.py must exist
and its ``apply()`` must name the same steps, in the same order, as the
role's tasks followed by its handlers (the deploy runs the handlers' work
at its end, each step only if a file it depends on changed). The names are
read without running anything: the tasks and handlers from the YAML, the
deploy's steps from its syntax tree (every call with a ``name=`` keyword,
in source order).

Every file both engines write must also be written the same way: each
``ansible.builtin.template`` task has a ``put_template`` step of the same
name with the same template, destination, owner, group, mode and checker;
each ``ansible.builtin.file`` directory task a ``files.directory`` step with
the same path, owner, group and mode.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopthu import ROOT

ROLES_DIR = ROOT / "roles"
DEPLOYS_DIR = ROOT / "hopthu" / "deploys"

#: Tasks that exist only in Ansible's execution model and have no step.
ANSIBLE_ONLY_ACTIONS = {"ansible.builtin.meta", "meta"}


@dataclass(frozen=True)
class Step:
    name: str
    #: what the step does, with its arguments (module/function -> args)
    action: str
    args: dict[str, Any]
    where: str


def _roles() -> list[str]:
    return sorted(p.parent.parent.name for p in ROLES_DIR.glob("*/tasks/main.yml"))


def _action(task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    keywords = {
        "name",
        "when",
        "register",
        "notify",
        "listen",
        "changed_when",
        "failed_when",
        "check_mode",
        "delegate_to",
        "become",
        "run_once",
        "loop",
        "tags",
        "vars",
        "no_log",
        "ignore_errors",
        "any_errors_fatal",
        "environment",
        "args",
    }
    modules = [k for k in task if k not in keywords]
    if len(modules) != 1:
        raise AssertionError(f"task {task.get('name')!r}: cannot tell its module among {modules}")
    module = modules[0]
    args = task[module]
    return module, args if isinstance(args, dict) else {"_raw": args}


def ansible_steps(role: str) -> list[Step]:
    """The role's tasks (tasks/main.yml) then its handlers (handlers/main.yml);
    where a task is ``meta: flush_handlers``, the handlers run there instead
    (as Ansible runs them), and the tasks after it follow.

    A task that loops over a literal list with ``"{{ item }}"`` as an
    argument gets the list in place of ``"{{ item }}"``.
    """

    def read(kind: str) -> list[tuple[Step | None, Path]]:
        path = ROLES_DIR / role / kind / "main.yml"
        if not path.is_file():
            return []
        found: list[tuple[Step | None, Path]] = []
        for task in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            module, args = _action(task)
            if module in ANSIBLE_ONLY_ACTIONS:
                # None marks where the handlers are flushed.
                if args == {"_raw": "flush_handlers"}:
                    found.append((None, path))
                continue
            assert task.get("name"), f"{path}: a task without a name ({module})"
            loop = task.get("loop")
            if isinstance(loop, list):
                args = {k: (tuple(loop) if v == "{{ item }}" else v) for k, v in args.items()}
            found.append((Step(task["name"], module, args, f"{path.relative_to(ROOT)}"), path))
        return found

    handlers = [step for step, _ in read("handlers") if step is not None]
    steps: list[Step] = []
    flushed = False
    for step, _ in read("tasks"):
        if step is None:
            if not flushed:
                steps.extend(handlers)
                flushed = True
            continue
        steps.append(step)
    if not flushed:
        steps.extend(handlers)
    return steps


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def _call_name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_call_name(func.value)}.{func.attr}"
    if isinstance(func, ast.Name):
        return func.id
    return ast.unparse(func)


def _loop_values(tree: ast.AST) -> dict[ast.Call, dict[str, tuple[Any, ...]]]:
    """For each call inside ``for NAME in <literal list or tuple>:``, NAME -> the values."""
    found: dict[ast.Call, dict[str, tuple[Any, ...]]] = {}

    def visit(node: ast.AST, context: dict[str, tuple[Any, ...]]) -> None:
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            try:
                values = tuple(ast.literal_eval(node.iter))
            except ValueError:
                values = None
            if values is not None:
                context = {**context, node.target.id: values}
        if isinstance(node, ast.Call):
            found[node] = context
        for child in ast.iter_child_nodes(node):
            visit(child, context)

    visit(tree, {})
    return found


def pyinfra_steps(role: str) -> list[Step]:
    """Every call with a ``name=`` keyword in the deploy's ``apply()``, in source order.

    An argument that is the variable of an enclosing ``for`` over a literal
    tuple or list gets the tuple of its values.
    """
    path = DEPLOYS_DIR / f"{role}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    applies = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "apply"]
    assert applies, f"{path}: no apply() function; deploy.py calls <role>.apply()"
    loops = _loop_values(applies[0])
    calls = [
        node
        for node in ast.walk(applies[0])
        if isinstance(node, ast.Call) and any(k.arg == "name" for k in node.keywords)
    ]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    steps = []
    for call in calls:
        kwargs = {
            k.arg: (
                loops[call][k.value.id]
                if isinstance(k.value, ast.Name) and k.value.id in loops.get(call, {})
                else _literal(k.value)
            )
            for k in call.keywords
            if k.arg
        }
        name = kwargs.pop("name")
        assert isinstance(name, str), f"{path}:{call.lineno}: name= must be a string literal"
        steps.append(
            Step(name, _call_name(call.func), kwargs, f"{path.relative_to(ROOT)}:{call.lineno}")
        )
    return steps


def compare_names(ansible: list[str], pyinfra: list[str]) -> list[str]:
    """Human-readable differences between two ordered step lists (empty if equal)."""
    problems = []
    for i in range(max(len(ansible), len(pyinfra))):
        a = ansible[i] if i < len(ansible) else "(nothing)"
        p = pyinfra[i] if i < len(pyinfra) else "(nothing)"
        if a != p:
            problems.append(f"step {i + 1}: Ansible {a!r} vs pyinfra {p!r}")
    return problems


def _file_fields(step: Step) -> dict[str, Any]:
    """The fields two engines must agree on for a written file or directory."""
    a = step.args
    if step.action in ("ansible.builtin.template", "template"):
        return {
            "kind": "template",
            "template": a.get("src"),
            "dest": a.get("dest"),
            "user": a.get("owner"),
            "group": a.get("group"),
            "mode": a.get("mode"),
            "validate": a.get("validate"),
        }
    if step.action.endswith("put_template"):
        return {
            "kind": "template",
            "template": a.get("template"),
            "dest": a.get("dest"),
            "user": a.get("user"),
            "group": a.get("group"),
            "mode": a.get("mode"),
            "validate": a.get("validate"),
        }
    if step.action in ("ansible.builtin.file", "file") and a.get("state") == "directory":
        return {
            "kind": "directory",
            "dest": a.get("path"),
            "user": a.get("owner"),
            "group": a.get("group"),
            "mode": a.get("mode"),
        }
    if step.action == "files.directory":
        return {
            "kind": "directory",
            "dest": a.get("path"),
            "user": a.get("user"),
            "group": a.get("group"),
            "mode": a.get("mode"),
        }
    return {}


ROLES = _roles()


def test_there_is_a_role_to_compare() -> None:
    assert ROLES, "no roles/*/tasks/main.yml found"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_pyinfra_deploy(role: str) -> None:
    assert (DEPLOYS_DIR / f"{role}.py").is_file(), (
        f"roles/{role}/ has no pyinfra twin: write hopthu/deploys/{role}.py with the same steps "
        f"(DESIGN.md §2) and call it from deploy.py"
    )


@pytest.mark.parametrize("role", ROLES)
def test_role_and_deploy_name_the_same_steps_in_the_same_order(role: str) -> None:
    ansible = [s.name for s in ansible_steps(role)]
    pyinfra = [s.name for s in pyinfra_steps(role)]
    problems = compare_names(ansible, pyinfra)
    assert not problems, (
        f"roles/{role} (tasks then handlers) and hopthu/deploys/{role}.py differ; rename or "
        f"reorder so both read the same:\n  " + "\n  ".join(problems)
    )


@pytest.mark.parametrize("role", ROLES)
def test_role_and_deploy_write_each_file_the_same_way(role: str) -> None:
    pyinfra_by_name = {s.name: s for s in pyinfra_steps(role)}
    problems = []
    checked = 0
    for step in ansible_steps(role):
        wanted = _file_fields(step)
        if not wanted:
            continue
        checked += 1
        twin = pyinfra_by_name.get(step.name)
        got = _file_fields(twin) if twin else {}
        if got != wanted:
            problems.append(
                f"{step.name!r}: Ansible ({step.where}) {wanted} vs pyinfra "
                f"({twin.where if twin else 'missing'}) {got or '(no put_template/files.directory)'}"
            )
    assert checked, f"roles/{role}: no template or directory task found to compare"
    assert not problems, "the engines write files differently:\n  " + "\n  ".join(problems)


def test_apt_cache_lifetime_is_the_same_in_both_engines() -> None:
    from hopthu.deploys import common

    refresh = next(s for s in ansible_steps("common") if s.name == "Refresh the apt cache")
    match = re.search(r"else\s+(\d+)", str(refresh.args["cache_valid_time"]))
    assert match, f"{refresh.where}: cache_valid_time should end in 'else <seconds>'"
    assert int(match.group(1)) == common.APT_CACHE_VALID_TIME


def test_the_comparison_reports_a_renamed_or_moved_step() -> None:
    assert compare_names(["A", "B"], ["A", "B"]) == []
    assert compare_names(["A", "B"], ["B", "A"]) == [
        "step 1: Ansible 'A' vs pyinfra 'B'",
        "step 2: Ansible 'B' vs pyinfra 'A'",
    ]
    assert compare_names(["A", "B"], ["A"]) == ["step 2: Ansible 'B' vs pyinfra '(nothing)'"]
