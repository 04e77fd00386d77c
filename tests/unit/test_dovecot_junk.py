"""Junk filing and learning in Dovecot: one settings model, 2.3 and 2.4 syntax.

The lab's mail1 is rendered for Debian 12 (Dovecot 2.3) and Debian 13
(Dovecot 2.4), with the junk settings as the lab has them and switched off.
dovecot.conf is parsed into its sections, so each assertion names where a
setting must be (the learn-spam script inside `mailbox Junk` of the inbox
namespace on 2.4, `imapsieve_mailbox1_*` in `plugin {}` on 2.3). The Sieve
scripts and the learning program are checked as rendered, and the program is
run with stand-ins for rspamc and logger: it never fails the user's move.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hopthu.render import render
from hopthu.settings import load_host

MAJORS = {12: "2.3", 13: "2.4"}
PIPE = "/usr/local/lib/hopthu/sieve-pipe/rspamd-learn"


def settings(major: int, **override: Any) -> dict[str, Any]:
    extra = {"common__debian_major": major, **override}
    return dict(load_host("lab", "mail1", extra_vars=extra).values)


# --- A small reader of dovecot.conf ------------------------------------------------------


Section = list[tuple[str, Any]]


def parse(text: str) -> Section:
    """dovecot.conf as nested (key, value) pairs; a section's value is its own list."""
    root: Section = []
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("{"):
            child: Section = []
            stack[-1].append((line[:-1].strip(), child))
            stack.append(child)
        elif line == "}":
            stack.pop()
        else:
            key, _, value = line.partition("=")
            stack[-1].append((key.strip(), value.strip()))
    assert len(stack) == 1, "unbalanced braces in dovecot.conf"
    return root


def section(tree: Section, *path: str) -> Section:
    """The section at `path` ("namespace inbox", "mailbox Junk", ...); fails if absent."""
    for name in path:
        found = [value for key, value in tree if key == name and isinstance(value, list)]
        assert found, f"no section {name!r} in {[k for k, _ in tree]}"
        tree = found[0]
    return tree


def values(tree: Section) -> dict[str, str]:
    return {key: value for key, value in tree if isinstance(value, str)}


def keys_anywhere(tree: Section) -> Iterator[str]:
    for key, value in tree:
        yield key
        if isinstance(value, list):
            yield from keys_anywhere(value)


def dovecot_conf(major: int, **override: Any) -> Section:
    return parse(render("etc/dovecot/dovecot.conf.j2", settings(major, **override)))


# --- Filing probable spam into Junk at delivery ------------------------------------------


def test_dovecot_24_files_probable_spam_with_a_before_script_at_delivery() -> None:
    junk = values(section(dovecot_conf(13), "sieve_script junk"))
    # No cause: a before script's default cause is delivery, so it never runs in IMAP.
    assert junk == {"type": "before", "path": "/etc/dovecot/sieve/junk.sieve"}


def test_dovecot_23_files_probable_spam_with_sieve_before() -> None:
    plugin = values(section(dovecot_conf(12), "plugin"))
    assert plugin["sieve_before"] == "/etc/dovecot/sieve/junk.sieve"
    assert plugin["sieve"] == "file:~/sieve;active=~/.dovecot.sieve"


@pytest.mark.parametrize("major", MAJORS, ids=MAJORS.values())
def test_without_the_junk_setting_no_script_runs_at_delivery(major: int) -> None:
    conf = dovecot_conf(major, dovecot__junk_sieve=False)
    assert "sieve_script junk" not in set(keys_anywhere(conf))
    assert "sieve_before" not in set(keys_anywhere(conf))


@pytest.mark.parametrize("header", ["X-Spam", "X-Spam-Flag"])
def test_the_junk_script_files_the_configured_header_into_junk(header: str) -> None:
    script = render("etc/dovecot/sieve/junk.sieve.j2",
                    settings(13, dovecot__junk_header=header))
    assert f'if header :is "{header}" "Yes" {{\n  fileinto :create "Junk";\n  stop;\n}}' in script
    assert 'require ["fileinto", "mailbox"];' in script


# --- Learning from users' moves (IMAPSieve) ------------------------------------------------


def test_dovecot_24_learns_spam_into_junk_and_ham_out_of_it() -> None:
    conf = dovecot_conf(13)
    spam = values(section(conf, "namespace inbox", "mailbox Junk", "sieve_script learn-spam"))
    assert spam == {"type": "before", "cause": "copy",
                    "path": "/etc/dovecot/sieve/learn-spam.sieve"}
    ham = values(section(conf, "imapsieve_from Junk", "sieve_script learn-ham"))
    assert ham == {"type": "before", "cause": "copy",
                   "path": "/etc/dovecot/sieve/learn-ham.sieve"}
    assert values(section(conf, "protocol imap", "mail_plugins")) == {
        "imap_quota": "yes", "imap_acl": "yes", "imap_sieve": "yes"}
    assert values(section(conf, "sieve_plugins")) == {
        "sieve_imapsieve": "yes", "sieve_extprograms": "yes"}
    assert values(section(conf, "sieve_global_extensions")) == {"vnd.dovecot.pipe": "yes"}
    assert values(conf)["sieve_pipe_bin_dir"] == "/usr/local/lib/hopthu/sieve-pipe"
    # The Junk folder itself stays what it was: special-use, created and subscribed.
    junk = values(section(conf, "namespace inbox", "mailbox Junk"))
    assert junk == {"special_use": "\\Junk", "auto": "subscribe"}


def test_dovecot_23_learns_spam_into_junk_and_ham_out_of_it() -> None:
    conf = dovecot_conf(12)
    plugin = values(section(conf, "plugin"))
    assert {k: v for k, v in plugin.items() if k.startswith("imapsieve_")} == {
        "imapsieve_mailbox1_name": "Junk",
        "imapsieve_mailbox1_causes": "COPY",
        "imapsieve_mailbox1_before": "file:/etc/dovecot/sieve/learn-spam.sieve",
        "imapsieve_mailbox2_name": "*",
        "imapsieve_mailbox2_from": "Junk",
        "imapsieve_mailbox2_causes": "COPY",
        "imapsieve_mailbox2_before": "file:/etc/dovecot/sieve/learn-ham.sieve",
    }
    assert plugin["sieve_plugins"] == "sieve_imapsieve sieve_extprograms"
    assert plugin["sieve_global_extensions"] == "+vnd.dovecot.pipe"
    assert plugin["sieve_pipe_bin_dir"] == "/usr/local/lib/hopthu/sieve-pipe"
    imap = values(section(conf, "protocol imap"))
    assert imap["mail_plugins"] == "$mail_plugins imap_quota imap_acl imap_sieve"


@pytest.mark.parametrize("major", MAJORS, ids=MAJORS.values())
def test_without_learning_nothing_is_hooked_but_every_script_still_compiles(major: int) -> None:
    conf = dovecot_conf(major, dovecot__spam_learning=False)
    keys = set(keys_anywhere(conf))
    assert not {k for k in keys if "imapsieve_" in k or k.startswith("imapsieve")}
    assert "sieve_script learn-spam" not in keys and "imap_sieve" not in keys
    text = render("etc/dovecot/dovecot.conf.j2", settings(major, dovecot__spam_learning=False))
    assert "imap_sieve" not in text
    # sievec compiles /etc/dovecot/sieve whole: the learning scripts need
    # the pipe extension and the imapsieve plugin even when nothing runs them.
    assert "sieve_extprograms" in text and "vnd.dovecot.pipe" in text
    assert "sieve_imapsieve" in text


@pytest.mark.parametrize("major", MAJORS, ids=MAJORS.values())
def test_each_dovecot_version_gets_only_its_own_syntax(major: int) -> None:
    text = render("etc/dovecot/dovecot.conf.j2", settings(major))
    only_24 = ("imapsieve_from", "sieve_script", "mail_plugins {", "sieve_plugins {")
    only_23 = ("plugin {", "imapsieve_mailbox", "sieve_before", "$mail_plugins")
    wrong = only_23 if MAJORS[major] == "2.4" else only_24
    assert [w for w in wrong if w in text] == []


def test_the_spam_script_pipes_every_message_moved_into_junk() -> None:
    script = render("etc/dovecot/sieve/learn-spam.sieve.j2", settings(13))
    assert 'require ["vnd.dovecot.pipe", "copy", "imapsieve"];' in script
    assert script.rstrip().endswith('pipe :copy "rspamd-learn" ["spam"];')


def test_the_ham_script_learns_nothing_from_a_move_to_trash() -> None:
    script = render("etc/dovecot/sieve/learn-ham.sieve.j2", settings(13))
    body = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert body == [
        'require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];',
        'if environment :matches "imap.mailbox" "*" {',
        '  set "mailbox" "${1}";',
        "}",
        'if string :is "${mailbox}" ["Trash", "Junk"] {',
        "  stop;",
        "}",
        'pipe :copy "rspamd-learn" ["ham"];',
    ]


# --- The learning program ------------------------------------------------------------------


def learning_program(tmp_path: Path, **override: Any) -> tuple[Path, Path]:
    """The rendered rspamd-learn with stand-ins: rspamc and logger record their arguments."""
    text = render("usr/local/lib/hopthu/sieve-pipe/rspamd-learn.j2", settings(13, **override))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    (bin_dir / "rspamc").write_text(
        "#!/bin/sh\n"
        f'echo "rspamc $*" >> {log}\n'
        'cat > /dev/null\n'
        'if [ -n "${FAKE_RSPAMC_FAIL:-}" ]; then echo "error = connection refused;"; exit 1; fi\n'
        'echo "success = true;"\n'
    )
    (bin_dir / "logger").write_text(f'#!/bin/sh\necho "logger $*" >> {log}\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    program = tmp_path / "rspamd-learn"
    program.write_text(text.replace("/usr/bin/rspamc", str(bin_dir / "rspamc")))
    program.chmod(0o755)
    return program, log


def run(program: Path, *args: str, env: dict[str, str] | None = None) -> int:
    environment = {"PATH": f"{program.parent / 'bin'}:/usr/bin:/bin", **(env or {})}
    return subprocess.run(
        ["sh", str(program), *args], input=b"Subject: hello\n\nbody\n",
        env=environment, check=False, timeout=10,
    ).returncode


@pytest.mark.parametrize("password_file", ["", "/etc/hopthu/rspamd/controller.password"])
def test_the_learning_program_is_valid_shell(password_file: str) -> None:
    text = render("usr/local/lib/hopthu/sieve-pipe/rspamd-learn.j2",
                  settings(13, dovecot__rspamd_controller_password_file=password_file))
    assert text.startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n"], input=text.encode(), check=True)


@pytest.mark.parametrize(("kind", "command"), [("spam", "learn_spam"), ("ham", "learn_ham")])
def test_the_learning_program_reads_the_password_from_a_file_never_the_command_line(
    tmp_path: Path, kind: str, command: str
) -> None:
    password = tmp_path / "controller.password"
    password.write_text("s3cret\n")
    program, log = learning_program(
        tmp_path, dovecot__rspamd_controller_password_file=str(password))
    assert run(program, kind) == 0
    calls = log.read_text()
    assert f"rspamc -h localhost:11334 -P {password} -t 5 {command}" in calls
    assert "s3cret" not in calls
    assert f"logger -t hopthu-rspamd-learn -p mail.info {command}: learned" in calls


def test_without_a_password_file_the_program_relies_on_the_controllers_trust(
    tmp_path: Path,
) -> None:
    program, log = learning_program(tmp_path, dovecot__rspamd_controller_password_file="")
    assert run(program, "spam") == 0
    assert "rspamc -h localhost:11334 -t 5 learn_spam" in log.read_text()


def test_a_failure_to_learn_is_logged_and_never_fails_the_users_move(tmp_path: Path) -> None:
    program, log = learning_program(tmp_path, dovecot__rspamd_controller_password_file="")
    assert run(program, "ham", env={"FAKE_RSPAMC_FAIL": "1"}) == 0
    assert ("logger -t hopthu-rspamd-learn -p mail.warning learn_ham failed (rspamc exit 1): "
            "error = connection refused;") in log.read_text()


def test_an_unreadable_password_file_skips_learning_with_a_reason(tmp_path: Path) -> None:
    program, log = learning_program(
        tmp_path, dovecot__rspamd_controller_password_file=str(tmp_path / "missing"))
    assert run(program, "spam") == 0
    calls = log.read_text()
    assert "rspamc" not in calls.replace("hopthu-rspamd-learn", "")
    assert "cannot read" in calls and "learn_spam skipped" in calls


def test_an_unknown_kind_is_logged_and_learns_nothing(tmp_path: Path) -> None:
    program, log = learning_program(tmp_path, dovecot__rspamd_controller_password_file="")
    assert run(program, "eggs") == 0
    assert "usage: rspamd-learn spam|ham (got 'eggs')" in log.read_text()

