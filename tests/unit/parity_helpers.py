"""Render templates with Ansible's own template action and with hopthu.render.

Used by test_template_parity.py. The Ansible side is one real
``ansible-playbook`` run, offline (``ansible_connection: local``): every
(case, template) pair is a loop item of one ``ansible.builtin.template`` task,
so the bytes come from the code path a deploy uses: the template action
plugin, its search path, its templar settings and its encoding of the result.
Only the upload is replaced by a local copy of the same bytes
(fixtures/action_plugins/hopthu_parity_template.py): with the real ``copy``
step each file costs two module runs, and a few hundred files took over two
minutes on a 2-CPU machine instead of seconds. One run for everything.

A *case* is one set of variables: a host of an inventory, for one Debian
major release, or a fixture case from fixtures/parity_vars.yml. Each case is
a host of a generated inventory whose only variables are the case's (a JSON
host_vars file), so both engines see exactly the same variables and the
comparison isolates the templating engine. Variable precedence is tested
elsewhere.

Which templates a host gets: the templates its roles render, found by
scanning ``roles/*/tasks/*.yml`` for ``ansible.builtin.template`` tasks; the
roles a host gets come from hopthu.settings (``Settings.roles``, which follows
the plays of ``site.yml``), and so do its variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.nativetypes import NativeEnvironment

from hopthu import ROOT
from hopthu import inventory as inventory_mod
from hopthu.render import TEMPLATES_DIR, template_variables
from hopthu.settings import Settings, SettingsError, load_host

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
FIXTURE_TEMPLATES = FIXTURES / "templates"
FIXTURE_VARS = FIXTURES / "parity_vars.yml"
CALLBACK_DIR = FIXTURES / "callback_plugins"
ACTION_DIR = FIXTURES / "action_plugins"

#: The Debian releases the roles support (DESIGN.md §3): every host is
#: rendered for each, when the settings have ``common__debian_major``.
DEBIAN_MAJORS = (12, 13)

TEMPLATE_MODULES = ("ansible.builtin.template", "ansible.legacy.template", "template")
PARTIALS = "_partials"


@dataclass
class Case:
    """One set of variables rendered with a set of templates."""

    id: str
    templates_dir: Path
    templates: list[str]
    variables: dict[str, Any] = field(repr=False)
    inventory: str | None = None
    host: str | None = None
    debian_major: int | None = None


# --- Variables ------------------------------------------------------------------------


def host_settings(
    inventory: str, host: str, debian_major: int | None = None, root: Path = ROOT
) -> Settings:
    """The host's settings as hopthu's deploys render with them (hopthu.settings).

    `debian_major` is set the way a deploy sets it from the host (an extra
    variable, above everything), so values derived from it follow.
    """
    extra = None if debian_major is None else {"common__debian_major": debian_major}
    return load_host(inventory, host, root=root, extra_vars=extra)


def plain_json(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The case's template variables, passed through JSON (what Ansible will read)."""
    variables = template_variables(values)
    for name, value in variables.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: variable {name} = {value!r} cannot be handed to Ansible as JSON "
                f"({exc}); settings values must be plain YAML data"
            ) from None
    return json.loads(json.dumps(variables))


# --- Which templates each host renders -------------------------------------------------


def _walk_tasks(tasks: Any) -> Iterator[dict[str, Any]]:
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk_tasks(task.get(key))


def _module_args(task: dict[str, Any], modules: Iterable[str]) -> dict[str, Any] | None:
    for module in modules:
        if module in task:
            args = task[module]
            if isinstance(args, str):  # "src=a dest=b" (free-form k=v)
                return dict(part.split("=", 1) for part in args.split() if "=" in part)
            return dict(args or {})
    return None


@dataclass
class TemplateTask:
    role: str
    file: Path
    name: str
    src: str
    loop: Any


def template_tasks(root: Path = ROOT) -> list[TemplateTask]:
    """Every ``ansible.builtin.template`` task of every role."""
    found: list[TemplateTask] = []
    for tasks_file in sorted(root.glob("roles/*/tasks/**/*.y*ml")):
        role = tasks_file.relative_to(root / "roles").parts[0]
        data = yaml.safe_load(tasks_file.read_text(encoding="utf-8"))
        for task in _walk_tasks(data):
            args = _module_args(task, TEMPLATE_MODULES)
            if args is None or "src" not in args:
                continue
            loop = task.get("loop", task.get("with_items"))
            found.append(
                TemplateTask(role, tasks_file, str(task.get("name", "")), args["src"], loop)
            )
    return found


def task_templates(task: TemplateTask, values: Mapping[str, Any]) -> list[str]:
    """The template paths one task renders for a host with `values`."""
    if "{{" not in task.src and "{%" not in task.src:
        return [task.src]
    env = NativeEnvironment(undefined=jinja2.StrictUndefined)
    items = task.loop
    if isinstance(items, str):
        items = env.from_string(items).render(dict(values))
    if not isinstance(items, list):
        raise TypeError(
            f"{task.file.relative_to(ROOT)}: task {task.name!r}: src {task.src!r} is templated "
            f"but its loop {task.loop!r} is not a list; the parity test cannot tell which "
            f"templates it renders"
        )
    return [str(env.from_string(task.src).render({**values, "item": item})) for item in items]


def inventories(root: Path = ROOT) -> list[str]:
    """Every inventory with a hosts.yml that has hosts."""
    names = []
    for hosts_file in sorted(root.glob("inventories/*/hosts.yml")):
        if inventory_mod.load(hosts_file).hosts:
            names.append(hosts_file.parent.name)
    return names


def project_templates(templates_dir: Path = TEMPLATES_DIR) -> list[str]:
    """Every template except the partials, as paths under templates/."""
    if not templates_dir.is_dir():
        return []
    return sorted(
        str(p.relative_to(templates_dir))
        for p in templates_dir.rglob("*.j2")
        if p.relative_to(templates_dir).parts[0] != PARTIALS
    )


@dataclass
class Plan:
    cases: list[Case]
    #: template -> why it is not rendered for any host (an orphan)
    orphans: dict[str, str]
    #: problems found while planning (a role's src that does not exist, ...)
    problems: list[str]


def plan_project(root: Path = ROOT) -> Plan:
    """The cases of every host of every inventory, per Debian major."""
    tasks = template_tasks(root)
    templates_dir = root / "templates"
    existing = set(project_templates(templates_dir))
    referenced: dict[str, set[str]] = {}
    rendered: set[str] = set()
    problems: list[str] = []
    cases: list[Case] = []
    for task in tasks:
        if "{{" not in task.src and "{%" not in task.src:
            referenced.setdefault(task.src, set()).add(task.role)
    for inv_name in inventories(root):
        for host in inventory_mod.load(root / "inventories" / inv_name / "hosts.yml").hosts:
            try:
                base = host_settings(inv_name, host, root=root)
                majors = DEBIAN_MAJORS if "common__debian_major" in base.values else (None,)
                per_major = [
                    (major, base if major is None else host_settings(inv_name, host, major, root))
                    for major in majors
                ]
            except SettingsError as exc:
                problems.append(f"{inv_name}/{host}: the settings do not load:\n{exc}")
                continue
            for major, settings in per_major:
                templates: list[str] = []
                for task in tasks:
                    if task.role not in settings.roles:
                        continue
                    try:
                        srcs = task_templates(task, settings.values)
                    except (TypeError, ValueError, jinja2.TemplateError) as exc:
                        problems.append(f"{inv_name}/{host}: {exc}")
                        continue
                    for src in srcs:
                        referenced.setdefault(src, set()).add(task.role)
                        if src not in existing:
                            problems.append(
                                f"{task.file.relative_to(root)}: task {task.name!r} renders "
                                f"{src!r}, which is not under templates/"
                            )
                        elif src not in templates:
                            templates.append(src)
                case_id = f"{inv_name}--{host}" + ("" if major is None else f"--debian{major}")
                try:
                    variables = plain_json(settings.values, case_id)
                except TypeError as exc:
                    problems.append(str(exc))
                    continue
                rendered.update(templates)
                cases.append(
                    Case(
                        id=case_id,
                        templates_dir=templates_dir,
                        templates=templates,
                        variables=variables,
                        inventory=inv_name,
                        host=host,
                        debian_major=major,
                    )
                )
    orphans: dict[str, str] = {}
    for template in sorted(existing - rendered):
        if template not in referenced:
            orphans[template] = (
                "no role's tasks/*.yml renders it with ansible.builtin.template; "
                "add the task or delete the template"
            )
        else:
            roles = ", ".join(sorted(referenced[template]))
            orphans[template] = (
                f"its role ({roles}) applies to no host of any inventory (site.yml plays); "
                f"apply the role or delete the template"
            )
    return Plan(cases=cases, orphans=orphans, problems=problems)


def plan_fixtures() -> list[Case]:
    """The fixture cases: every fixture template with each set of fixture variables."""
    data = yaml.safe_load(FIXTURE_VARS.read_text(encoding="utf-8"))
    templates = project_templates(FIXTURE_TEMPLATES)
    return [
        Case(
            id=name,
            templates_dir=FIXTURE_TEMPLATES,
            templates=templates,
            variables=plain_json(values, name),
        )
        for name, values in data.items()
    ]


# --- The Ansible side ----------------------------------------------------------------

RENDER_TASKS = """\
# Generated by tests/unit/parity_helpers.py. The task lives next to a
# templates/ link, so the action searches it as a role task searches the
# project's templates/ (plugins/action/template.py). hopthu_parity_template
# is ansible.builtin.template that writes to the controller instead of
# uploading (fixtures/action_plugins/).
- name: Render the template with ansible.builtin.template's action
  hopthu_parity_template:
    src: "{{ item.src }}"
    dest: "{{ item.dest }}"
  loop: "{{ hopthu_parity_jobs }}"
  loop_control:
    label: "{{ item.src }}"
  ignore_errors: true
"""


@dataclass
class AnsibleRun:
    workdir: Path
    seconds: float
    failures: dict[tuple[str, str], str]
    stdout: str

    def output_path(self, case: Case, template: str) -> Path:
        return self.workdir / "out" / case.id / template.removesuffix(".j2")

    def output(self, case: Case, template: str) -> bytes | None:
        path = self.output_path(case, template)
        return path.read_bytes() if path.is_file() else None

    def failure(self, case: Case, template: str) -> str | None:
        return self.failures.get((case.id, template)) or self.failures.get((case.id, ""))


def run_ansible(cases: list[Case], workdir: Path) -> AnsibleRun:
    """Render every template of every case with one ansible-playbook run."""
    groups: dict[Path, str] = {}
    inventory: dict[str, Any] = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {},
        }
    }
    host_vars = workdir / "inventory" / "host_vars"
    host_vars.mkdir(parents=True)
    for case in cases:
        if not case.templates:
            continue
        group = groups.setdefault(case.templates_dir, f"parity_{len(groups)}")
        jobs = []
        for template in case.templates:
            dest = workdir / "out" / case.id / template.removesuffix(".j2")
            dest.parent.mkdir(parents=True, exist_ok=True)
            jobs.append({"src": template, "dest": str(dest)})
        children = inventory["all"]["children"]
        children.setdefault(group, {"hosts": {}})["hosts"][case.id] = {"hopthu_parity_jobs": jobs}
        (host_vars / f"{case.id}.json").write_text(
            json.dumps(case.variables, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    plays = []
    for templates_dir, group in groups.items():
        play_dir = workdir / group
        play_dir.mkdir()
        (play_dir / "templates").symlink_to(templates_dir, target_is_directory=True)
        (play_dir / "render.yml").write_text(RENDER_TASKS, encoding="utf-8")
        plays.append(
            {
                "name": f"Render the templates of {templates_dir}",
                "hosts": group,
                "gather_facts": False,
                "tasks": [{"ansible.builtin.import_tasks": f"{group}/render.yml"}],
            }
        )
    (workdir / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    (workdir / "parity.yml").write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    errors = workdir / "failures.json"
    env = {
        **os.environ,
        # The project's ansible.cfg, as in a deploy: its filter_plugins, and
        # any Jinja setting someone adds there, apply to this run too.
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": "hopthu_parity",
        "ANSIBLE_ACTION_PLUGINS": str(ACTION_DIR),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp-local"),
        "ANSIBLE_REMOTE_TEMP": str(workdir / "tmp-remote"),
        "ANSIBLE_FORKS": str(max(10, min(50, len(cases)))),
        "ANSIBLE_NOCOLOR": "1",
        "HOPTHU_PARITY_ERRORS": str(errors),
    }
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(workdir / "inventory" / "hosts.yml"),
            str(workdir / "parity.yml"),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0 or not errors.is_file():
        raise RuntimeError(
            f"ansible-playbook failed (exit {proc.returncode}) before rendering:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    failures: dict[tuple[str, str], str] = {}
    for failure in json.loads(errors.read_text(encoding="utf-8")):
        item = failure.get("item")
        template = item.get("src", "") if isinstance(item, dict) else ""
        failures[(failure["host"], template)] = failure["msg"]
    return AnsibleRun(workdir=workdir, seconds=seconds, failures=failures, stdout=proc.stdout)
