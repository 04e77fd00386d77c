"""The clamav role's files, as rendered for the lab and for production.

clamd's limits, socket and database reload come from the settings; the
drop-ins lift Debian's conditions so clamd starts with the lab's one
signature; freshclam asks only the data centre's mirror; the custom database
holds exactly the configured signatures. clamav-checkconf is run against a
stand-in clamconf, because the real one prints a parse error and still
exits 0: the checker must fail anyway.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hopthu.render import render
from hopthu.settings import load_host

EICAR = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature"
HDB = re.compile(r"^[0-9a-f]{32,64}:[0-9]+:[A-Za-z0-9._-]+$")


def settings(inventory: str = "lab", host: str = "mail1", **override: Any) -> dict[str, Any]:
    return dict(load_host(inventory, host, extra_vars=override or None).values)


def directives(text: str) -> list[tuple[str, str]]:
    """The non-comment lines of a ClamAV or systemd file as (name, value)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.replace("=", " ", 1).partition(" ") if "=" in line \
            else line.partition(" ")
        out.append((name.strip(), value.strip()))
    return out


# --- clamd.conf --------------------------------------------------------------------------


def test_clamd_listens_only_on_the_configured_local_socket() -> None:
    conf = dict(directives(render("etc/clamav/clamd.conf.j2", settings())))
    assert conf["LocalSocket"] == "/run/clamav/clamd.ctl"
    assert "TCPSocket" not in conf and "TCPAddr" not in conf


def test_clamd_limits_come_from_the_settings() -> None:
    values = settings(clamav__stream_max_length=104857600, clamav__max_file_size=104857600,
                      clamav__max_scan_size=419430400, clamav__max_recursion=8,
                      clamav__max_files=500, clamav__max_threads=4)
    conf = dict(directives(render("etc/clamav/clamd.conf.j2", values)))
    assert {k: conf[k] for k in ("StreamMaxLength", "MaxFileSize", "MaxScanSize",
                                 "MaxRecursion", "MaxFiles", "MaxThreads")} == {
        "StreamMaxLength": "104857600", "MaxFileSize": "104857600",
        "MaxScanSize": "419430400", "MaxRecursion": "8", "MaxFiles": "500",
        "MaxThreads": "4"}


@pytest.mark.parametrize(("setting", "expected"), [(False, "no"), (True, "yes")])
def test_concurrent_database_reload_follows_its_setting(setting: bool, expected: str) -> None:
    conf = dict(directives(render("etc/clamav/clamd.conf.j2",
                                  settings(clamav__concurrent_database_reload=setting))))
    assert conf["ConcurrentDatabaseReload"] == expected


def test_every_lab_limit_covers_the_largest_message() -> None:
    values = settings()
    conf = dict(directives(render("etc/clamav/clamd.conf.j2", values)))
    largest = max(values["postfix__message_size_limit"], values["rspamd__max_message_size"])
    assert int(conf["StreamMaxLength"]) >= largest
    assert int(conf["MaxFileSize"]) >= largest
    assert int(conf["MaxScanSize"]) >= int(conf["MaxFileSize"])


# --- The systemd drop-ins ----------------------------------------------------------------------


def test_the_service_drop_in_lifts_debians_conditions_and_restarts_clamd() -> None:
    text = render("etc/systemd/system/clamav-daemon.service.d/hopthu.conf.j2", settings())
    assert directives(text) == [
        ("[Unit]", ""), ("ConditionPathExistsGlob", ""),
        ("StartLimitIntervalSec", "600s"), ("StartLimitBurst", "10"),
        ("[Service]", ""), ("Restart", "on-failure"), ("RestartSec", "30s"),
        ("TimeoutStopSec", "10s"),
    ]


def test_clamd_waits_its_own_restart_delay_not_the_other_daemons() -> None:
    text = render("etc/systemd/system/clamav-daemon.service.d/hopthu.conf.j2",
                  settings(clamav__restart_sec=45, hopthu__service_restart_sec=2))
    assert ("RestartSec", "45s") in directives(text)


def test_the_socket_drop_in_listens_on_the_configured_socket() -> None:
    text = render("etc/systemd/system/clamav-daemon.socket.d/hopthu.conf.j2",
                  settings(clamav__clamd_socket="/run/clamav/scan.sock",
                           rspamd__antivirus_socket="/run/clamav/scan.sock"))
    assert directives(text) == [
        ("[Unit]", ""), ("ConditionPathExistsGlob", ""),
        ("[Socket]", ""), ("ListenStream", ""), ("ListenStream", "/run/clamav/scan.sock"),
    ]


# --- Signatures: the custom database and freshclam ---------------------------------------------


def test_the_lab_scans_with_the_eicar_signature_only() -> None:
    lines = directives(render("var/lib/clamav/hopthu.hdb.j2", settings()))
    assert lines == [(EICAR, "")]


def test_without_custom_signatures_the_database_holds_only_comments() -> None:
    text = render("var/lib/clamav/hopthu.hdb.j2", settings("production", "mx1"))
    # An empty .hdb is a "Malformed database" for ClamAV; comments alone load.
    assert text.strip() and directives(text) == []


def test_every_signature_line_is_in_clamavs_hash_format() -> None:
    signatures = [EICAR, "3395856ce81f2b7382dee72602f798b642f14140:68:Eicar-Sha1",
                  "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:68:Sha256"]
    text = render("var/lib/clamav/hopthu.hdb.j2", settings(clamav__custom_signatures=signatures))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == signatures
    assert all(HDB.match(line) for line in lines)


def test_freshclam_asks_only_the_data_centres_mirrors() -> None:
    text = render("etc/clamav/freshclam.conf.j2", settings("production", "mx1"))
    conf = directives(text)
    assert [v for k, v in conf if k == "PrivateMirror"] == ["http://clamav.dc.example.net"]
    assert not [k for k, _ in conf if k in ("DatabaseMirror", "DNSDatabaseInfo")]
    assert "clamav.net" not in " ".join(v for _, v in conf)
    assert dict(conf)["NotifyClamd"] == "/etc/clamav/clamd.conf"


def test_without_a_mirror_freshclam_has_no_source_and_says_it_is_stopped() -> None:
    text = render("etc/clamav/freshclam.conf.j2", settings())
    assert "PrivateMirror" not in dict(directives(text))
    assert "clamav-freshclam.service is stopped and disabled" in text


@pytest.mark.parametrize(("setting", "expected"), [(True, "yes"), (False, "no")])
def test_freshclam_tests_new_databases_as_set(setting: bool, expected: str) -> None:
    text = render("etc/clamav/freshclam.conf.j2",
                  settings(clamav__freshclam_test_databases=setting))
    assert dict(directives(text))["TestDatabases"] == expected


# --- clamav-checkconf ---------------------------------------------------------------------------


CLEAN = "Checking configuration files in DIR\\n\\nConfig file: clamd.conf\\nLogSyslog = yes\\n"


@pytest.fixture
def checker(tmp_path: Path) -> Path:
    text = render("usr/local/lib/hopthu/clamav-checkconf.j2", settings())
    subprocess.run(["sh", "-n"], input=text.encode(), check=True)
    path = tmp_path / "clamav-checkconf"
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_clamconf(tmp_path: Path, output: str, *, show_files: bool = False) -> dict[str, str]:
    """A clamconf that prints `output` and exits 0, as the real one does even on errors.

    With `show_files` it also reports each file of --config-dir, with its
    first line, as an ERROR line, so the checker passes them on to stderr.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "clamconf"
    show = ('for f in "$dir"/*; do echo "ERROR: file ${f##*/}: $(head -n 1 "$f")"; done\n'
            if show_files else "")
    tool.write_text(
        "#!/bin/sh\n"
        'dir=${1#--config-dir=}\n'
        f'printf "{output}"\n'
        f"{show}"
        "exit 0\n"
    )
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def check(checker: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(checker), *args], env=env, capture_output=True,
                          text=True, check=False, timeout=10)


def test_the_checker_accepts_what_clamconf_reads_without_complaint(
    checker: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new.conf"
    new.write_text("LocalSocket /run/clamav/clamd.ctl\n")
    result = check(checker, fake_clamconf(tmp_path, CLEAN), "clamd", str(new))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("complaint", [
    "ERROR: Parse error at /tmp/x/clamd.conf:87: Unknown option BogusOption\\n",
    "ERROR: Incorrect argument format for option MaxFileSize\\n",
    "WARNING: freshclam.conf and clamd.conf point to different database directories\\n",
])
def test_the_checker_fails_on_what_clamconf_only_prints(
    checker: Path, tmp_path: Path, complaint: str
) -> None:
    new = tmp_path / "new.conf"
    new.write_text("BogusOption yes\n")
    result = check(checker, fake_clamconf(tmp_path, complaint + CLEAN), "clamd", str(new))
    assert result.returncode == 1
    assert result.stderr.strip() == complaint.replace("\\n", "")


def test_the_checker_hands_clamconf_the_new_file_under_its_real_name(
    checker: Path, tmp_path: Path
) -> None:
    new = tmp_path / "candidate"
    new.write_text("# the new freshclam.conf\n")
    result = check(checker, fake_clamconf(tmp_path, CLEAN, show_files=True),
                   "freshclam", str(new))
    assert "ERROR: file freshclam.conf: # the new freshclam.conf" in result.stderr
    assert result.returncode == 1


@pytest.mark.parametrize("args", [("clamav", "/etc/clamav/clamd.conf"), ("clamd",)])
def test_the_checker_refuses_a_wrong_call(checker: Path, tmp_path: Path,
                                          args: tuple[str, ...]) -> None:
    result = check(checker, fake_clamconf(tmp_path, CLEAN), *args)
    assert result.returncode == 64
    assert "clamav-checkconf" in result.stderr or "usage" in result.stderr
