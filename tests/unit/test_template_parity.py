"""Ansible and hopthu render every template to the same bytes (DESIGN.md §2).

For every host of every inventory (and each Debian major the roles support),
each template the host's roles render is rendered twice with the same
variables: by a real ``ansible-playbook`` run of ``ansible.builtin.template``'s
action (one run for everything; only the upload is replaced by a local copy,
see parity_helpers.py) and by ``hopthu.render``. The files must be
byte-identical.

The fixture templates under fixtures/templates/ run the same way with the
variables of fixtures/parity_vars.yml. They use every construct the real
templates may use — for/if blocks under trim_blocks, whitespace control,
printed lists, dicts, ints, booleans and None, Vietnamese text, an include
and an import of a partial, the managed header, the firewall filter,
trailing newlines present and absent, Jinja comments — and stay as a
regression test of the renderer.
"""

from __future__ import annotations

import difflib
import re

import parity_helpers as ph
import pytest

from hopthu.render import RenderError, render

PLAN = ph.plan_project()
FIXTURE_CASES = ph.plan_fixtures()
CASES = [*PLAN.cases, *FIXTURE_CASES]
PAIRS = [(case, template) for case in CASES for template in case.templates]
ROLES_OF: dict[str, set[str]] = {}
for _task in ph.template_tasks():
    ROLES_OF.setdefault(_task.src, set()).add(_task.role)
NO_HEADER = re.compile(r"\{#\s*no-managed-header:\s*\S")


@pytest.fixture(scope="module")
def ansible_run(tmp_path_factory: pytest.TempPathFactory) -> ph.AnsibleRun:
    """One ansible-playbook run that renders every (case, template) pair."""
    return ph.run_ansible(CASES, tmp_path_factory.mktemp("parity"))


def _diff(expected: bytes, actual: bytes) -> str:
    lines = difflib.unified_diff(
        expected.decode("utf-8", "replace").splitlines(keepends=True),
        actual.decode("utf-8", "replace").splitlines(keepends=True),
        "ansible.builtin.template",
        "hopthu.render",
    )
    text = "".join(
        line if line.endswith("\n") else line + "\\ no newline at end\n" for line in lines
    )
    # Differences a line diff cannot show (\r, a BOM, trailing bytes): show the ends.
    return text or f"ansible ends {expected[-60:]!r}\nhopthu  ends {actual[-60:]!r}\n"


@pytest.mark.parametrize(
    ("case", "template"), PAIRS, ids=[f"{case.id}:{template}" for case, template in PAIRS]
)
def test_hopthu_renders_the_same_bytes_as_ansible(
    ansible_run: ph.AnsibleRun, case: ph.Case, template: str
) -> None:
    ansible_bytes = ansible_run.output(case, template)
    try:
        hopthu_bytes = render(template, case.variables, templates_dir=case.templates_dir).encode(
            "utf-8"
        )
        hopthu_error = None
    except RenderError as exc:
        hopthu_bytes, hopthu_error = None, str(exc)

    if ansible_bytes is None and hopthu_bytes is None:
        pytest.fail(
            f"{case.id}: {template} fails in both engines; fix the template or the variables.\n"
            f"hopthu: {hopthu_error}\nAnsible: {ansible_run.failure(case, template)}"
        )
    if ansible_bytes is None:
        pytest.fail(
            f"{case.id}: Ansible fails to render {template} but hopthu renders it:\n"
            f"{ansible_run.failure(case, template)}"
        )
    if hopthu_bytes is None:
        pytest.fail(
            f"{case.id}: hopthu fails to render {template} but Ansible renders it. The template "
            f"likely uses an Ansible-only filter or variable (banned: see hopthu/render.py):\n"
            f"{hopthu_error}"
        )
    assert hopthu_bytes == ansible_bytes, (
        f"{case.id}: {template} differs between the engines. Find the construct in the diff "
        f"and replace it with one from the allowed list in hopthu/render.py:\n"
        f"{_diff(ansible_bytes, hopthu_bytes)}"
    )


@pytest.mark.parametrize(
    ("case", "template"), PAIRS, ids=[f"{case.id}:{template}" for case, template in PAIRS]
)
def test_every_rendered_file_carries_its_own_managed_header(case: ph.Case, template: str) -> None:
    source = (case.templates_dir / template).read_text(encoding="utf-8")
    if NO_HEADER.search(source.split("\n", 1)[0]):
        return  # a format without comments, and the template says why
    text = render(template, case.variables, templates_dir=case.templates_dir)
    head = "\n".join(text.splitlines()[:8])
    assert "fingerprint: hopthu:" in head, (
        f"{template}: the rendered file does not start with the managed header (STYLE.md "
        f"habit 5). Put {{{{ '{template}' | managed_header('<role>') }}}} on its first line "
        f"(second after a #! or <?xml line), or, for a format without comments, "
        f"{{# no-managed-header: <why> #}}."
    )
    assert f"template: templates/{template})" in head, (
        f"{template}: its managed header names another template; it must say "
        f"{{{{ '{template}' | managed_header(...) }}}}"
    )
    if case.inventory is not None:
        roles = ROLES_OF.get(template, set())
        fingerprints = set(re.findall(r"fingerprint: hopthu:(\w+)", head))
        assert not roles or fingerprints & roles, (
            f"{template}: the header names role {sorted(fingerprints)} but the template is "
            f"rendered by {sorted(roles)}"
        )


def test_every_template_is_rendered_by_a_role_for_some_host() -> None:
    if PLAN.orphans:
        pytest.fail(
            "orphan templates (neither engine would deploy them):\n"
            + "\n".join(f"  templates/{template}: {why}" for template, why in PLAN.orphans.items())
        )


def test_every_template_task_names_an_existing_template() -> None:
    if PLAN.problems:
        pytest.fail("\n".join(PLAN.problems))


def test_fixture_templates_cover_both_trailing_newline_cases() -> None:
    sources = [
        (ph.FIXTURE_TEMPLATES / t).read_bytes() for t in ph.project_templates(ph.FIXTURE_TEMPLATES)
    ]
    assert any(s.endswith(b"\n\n") for s in sources), "a fixture must end in blank lines"
    assert any(not s.endswith(b"\n") for s in sources), "a fixture must end without a newline"


def test_the_parity_run_is_fast(ansible_run: ph.AnsibleRun) -> None:
    assert ansible_run.seconds < 60, (
        f"the Ansible side took {ansible_run.seconds:.1f}s for {len(PAIRS)} renders; "
        f"keep it to one playbook run"
    )


def test_ansible_loaded_our_filter_plugins(ansible_run: ph.AnsibleRun) -> None:
    case = FIXTURE_CASES[0]
    out = ansible_run.output(case, "etc/nftables.conf.j2")
    assert out is not None and b"fingerprint: hopthu:common" in out, (
        "Ansible did not render the fixture with filter_plugins/hopthu_filters.py: "
        f"{ansible_run.failure(case, 'etc/nftables.conf.j2')}"
    )
