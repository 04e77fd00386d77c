"""What `hopthu deploy` and the lab tests read from an engine's output: the
recap's counts, and the failures, shown first when a run fails.

The fixtures are real output: ansible-playbook 2.19 (default callback, YAML
results, as ansible.cfg sets) on a play with an ignored failure, a loop whose
second item fails and a failing handler; pyinfra 3 on a deploy whose second
operation fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hopthu.engines import DeployResult, failure_excerpt, parse_ansible_recap

FIXTURES = Path(__file__).parent / "fixtures" / "engine-output"
ANSIBLE = (FIXTURES / "ansible-failures.txt").read_text()
PYINFRA = (FIXTURES / "pyinfra-failure.txt").read_text()


def test_the_recap_counts_the_failed_tasks_and_the_changed_ones() -> None:
    changed, failed = parse_ansible_recap(ANSIBLE)
    assert changed == {} and failed == {}, "localhost is the controller, not a host"
    renamed = ANSIBLE.replace("localhost", "mail1")
    changed, failed = parse_ansible_recap(renamed)
    assert changed == {"mail1": 1}
    assert failed == {"mail1": 2}


def test_the_excerpt_holds_each_failed_task_with_its_origin_and_message() -> None:
    text = failure_excerpt(ANSIBLE)
    assert text.startswith("TASK [A loop whose second item fails]")
    assert "RUNNING HANDLER [Reload the service]" in text
    assert "Origin: /srv/hopthu/site.yml:12:7" in text
    assert "Origin: /srv/hopthu/site.yml:17:7" in text
    assert "failed: [localhost] (item=b)" in text
    assert "stderr: Job for postfix.service failed." in text
    assert text.index("A loop whose") < text.index("Reload the service"), "run order kept"


def test_the_excerpt_leaves_out_ignored_failures_and_the_hosts_that_did_well() -> None:
    text = failure_excerpt(ANSIBLE)
    assert "An ignored failure" not in text
    assert "/bin/false" not in text
    assert "Write the unit" not in text
    assert "ok: [localhost] => (item=a)" not in text
    assert "PLAY RECAP" not in text


def test_other_hosts_results_in_a_failed_task_are_left_out() -> None:
    two_hosts = ANSIBLE.replace("ok: [localhost] => (item=a)",
                                "ok: [localhost] => (item=a)\nchanged: [mail2] => (item=a)")
    text = failure_excerpt(two_hosts)
    assert "mail2" not in text
    assert "failed: [localhost] (item=b)" in text


def test_a_run_that_failed_nowhere_has_no_excerpt() -> None:
    ignored_only = ANSIBLE.split("TASK [Write the unit]")[0]
    assert "fatal: [localhost]" in ignored_only
    assert failure_excerpt(ignored_only) == ""
    assert failure_excerpt("") == ""


def test_the_pyinfra_excerpt_holds_the_failed_operation_and_the_commands_words() -> None:
    text = failure_excerpt(PYINFRA)
    assert text.startswith("--> Starting operation: Reload Postfix")
    assert "[@local] Job for postfix.service failed." in text
    assert "[@local] Error:" in text
    assert "A step that works" not in text
    assert "--> pyinfra error: No hosts remaining!" in text


def test_a_long_excerpt_is_cut_and_says_so() -> None:
    many = "\n".join([ANSIBLE] * 20)
    text = failure_excerpt(many, limit=2000)
    assert len(text) < 2100
    assert text.endswith("[... more failures cut ...]")


@pytest.mark.parametrize(("output", "first"), [
    (ANSIBLE, "TASK [A loop whose second item fails]"),
    (PYINFRA, "--> Starting operation: Reload Postfix"),
])
def test_explain_puts_the_failures_before_the_output_tail(output: str, first: str) -> None:
    result = DeployResult("ansible", 2, {}, {"mail1": 1}, output + "\n" + "progress\n" * 500)
    text = result.explain(tail=200)
    assert text.startswith("ansible exited 2; the failures:\n" + first)
    assert text.index(first) < text.index("--- the output's end:") < text.rindex("progress")
    assert len(text.split("--- the output's end:\n")[1]) == 200


def test_explain_of_a_run_without_failure_lines_is_its_tail() -> None:
    output = "x" * 50 + "ssh: connect to host mail1: timed out"
    result = DeployResult("pyinfra", 1, {}, {}, output)
    assert result.explain(tail=37) == (
        "pyinfra exited 1; the output's end:\nssh: connect to host mail1: timed out")


def test_a_failed_deploy_ends_with_what_failed_then_the_summary(monkeypatch, capsys) -> None:
    import argparse

    from hopthu import engines

    failed = DeployResult("ansible", 2, {"mail1": 1}, {"mail1": 2}, ANSIBLE)
    monkeypatch.setattr(engines, "run_engine", lambda *a, **k: failed)
    args = argparse.Namespace(engine="ansible", inventory="lab", check=False, diff=False,
                              limit=None, verbose=0)
    assert engines.run(args) == 2
    out = capsys.readouterr().out
    assert "hopthu deploy [ansible]: what failed\nTASK [A loop whose second item fails]" in out
    assert out.rstrip().endswith("hopthu deploy [ansible] FAILED: mail1: 1 changed")


def test_a_deploy_that_worked_prints_only_the_summary(monkeypatch, capsys) -> None:
    import argparse

    from hopthu import engines

    worked = DeployResult("pyinfra", 0, {"mail1": 0}, {"mail1": 0}, "--> Starting operation: x\n")
    monkeypatch.setattr(engines, "run_engine", lambda *a, **k: worked)
    args = argparse.Namespace(engine="pyinfra", inventory="lab", check=True, diff=False,
                              limit=None, verbose=0)
    assert engines.run(args) == 0
    assert capsys.readouterr().out == (
        "hopthu deploy [pyinfra] OK (check mode: nothing was changed): mail1: 0 changed\n")


def test_the_steps_that_changed_are_named_with_their_hosts() -> None:
    from hopthu.engines import changed_steps

    assert changed_steps(ANSIBLE) == ["TASK [Write the unit] on localhost"]
    assert changed_steps(PYINFRA) == ["--> Starting operation: A step that works on @local"]
    looped = ANSIBLE.replace("changed: [localhost]",
                             "changed: [mail1] => (item=a)\nchanged: [mail1] => (item=b)\n"
                             "ok: [mail2] => (item=a)\nchanged: [backup1]")
    assert changed_steps(looped) == ["TASK [Write the unit] on mail1, backup1"]
    assert changed_steps("PLAY RECAP\nmail1 : ok=3 changed=0") == []
