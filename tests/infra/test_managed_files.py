"""Built by code: the host's configuration is what this checkout renders (Art. 3).

Every file hopthu writes starts with the managed header, whose last line is
``fingerprint: hopthu:<role>`` and whose first names the template
(filter_plugins/hopthu_filters.py, ``managed_header``). The checks find those
files on the host (hopthu/manifest.py), render each template again here with
the host's settings (hopthu/render.py, the renderer pyinfra uses, byte-equal
to Ansible's) and compare: a hand edit on the host, a file left over from a
removed template, or a deploy from another checkout shows up as a difference.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import shlex
from typing import Any

import pytest

from hopthu import manifest

#: Files the common role must own on every host, by what they configure.
#: Each entry lists the acceptable paths (glob patterns).
BASE_FILES: dict[str, tuple[str, ...]] = {
    "the firewall (Art. 3)": ("/etc/nftables.conf",),
    "sshd": ("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*.conf"),
    "the resolver": ("/etc/unbound/unbound.conf", "/etc/unbound/unbound.conf.d/*.conf"),
    "the resolver clients": ("/etc/resolv.conf",),
    "journald": ("/etc/systemd/journald.conf", "/etc/systemd/journald.conf.d/*.conf"),
    "automatic updates": ("/etc/apt/apt.conf.d/20auto-upgrades",),
    "which updates are installed": ("/etc/apt/apt.conf.d/50unattended-upgrades",),
    "the package sources": ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*"),
    "time synchronisation": ("/etc/chrony/chrony.conf", "/etc/chrony/conf.d/*.conf"),
}

#: Lab-only roles that play a foreign system on a lab host (roles/lab_peer,
#: "the Internet") keep their templates at templates/<role>/ + the mirrored
#: path: the peer's /etc/postfix/main.cf is not the ministry's, whose template
#: holds the mirrored path itself, and a lab file never takes a path a
#: ministry role may need.
LAB_ONLY_TEMPLATE_ROOTS = ("lab_peer",)

HEADER_RE = re.compile(r"Managed by hopthu \(role: ([a-z0-9_]+), template: templates/(\S+?)\)\.")


@pytest.fixture(scope="module")
def managed(host: Any) -> dict[str, manifest.Entry]:
    result = host.run(manifest.remote_script())
    assert result.rc == 0, f"listing the managed files failed: {result.stderr.strip()}"
    return {e.path: e for e in manifest.parse(result.stdout)}


@pytest.fixture(scope="module")
def headers(host: Any, managed: dict[str, manifest.Entry]) -> dict[str, str]:
    """path -> the first lines of each managed file (where the header must be)."""
    if not managed:
        return {}
    script = "; ".join(
        f"printf '\\036%s\\n' {shlex.quote(p)}; head -n 8 {shlex.quote(p)}" for p in managed
    )
    out = host.check_output(script)
    chunks: dict[str, str] = {}
    for chunk in out.split("\x1e")[1:]:
        path, _, head = chunk.partition("\n")
        chunks[path] = head
    return chunks


@pytest.mark.control("ART3-BUILD")
def test_base_packages_are_installed(host: Any, settings: dict[str, Any]) -> None:
    wanted = list(settings["common__packages"]) + list(settings["common__packages_extra"] or [])
    missing = [name for name in wanted if not host.package(name).is_installed]
    assert not missing, (
        f"packages of common__packages/common__packages_extra are not installed: "
        f"{', '.join(missing)}. Redeploy the common role; if apt fails, check the mirror "
        "or proxy (common__apt_mirror, common__apt_proxy)."
    )


@pytest.mark.control("ART3-BUILD")
@pytest.mark.parametrize("area", sorted(BASE_FILES))
def test_base_configuration_is_managed_by_hopthu(
    managed: dict[str, manifest.Entry], host_settings: Any, area: str
) -> None:
    if "common" not in host_settings.roles:
        pytest.skip("site.yml does not apply the common role to this host")
    patterns = BASE_FILES[area]
    found = [p for p in managed if any(fnmatch.fnmatch(p, pat) for pat in patterns)]
    assert found, (
        f"no file configuring {area} carries the hopthu fingerprint "
        f"(looked for {', '.join(patterns)}): it was not written by the common role, or "
        "was replaced by hand. Deploy the common role to this host."
    )


@pytest.mark.control("ART3-BUILD")
def test_managed_files_start_with_the_managed_header(headers: dict[str, str]) -> None:
    assert headers, "no file on the host carries the hopthu fingerprint: deploy the host."
    late = []
    for path, head in headers.items():
        lines = head.splitlines()
        # After a #! or <?xml ?> line the header comes second; it is 3 lines
        # (5 with block comments).
        window = lines[:7] if lines and lines[0].startswith(("#!", "<?xml")) else lines[:6]
        if not any(manifest.FINGERPRINT in line for line in window) or not any(
                HEADER_RE.search(line) for line in window):
            late.append(path)
    assert not late, (
        f"these files carry the fingerprint but do not start with the managed header: "
        f"{', '.join(late)}. Start their templates with "
        "{{ 'PATH.j2' | managed_header('ROLE') }}."
    )


@pytest.mark.control("ART3-BUILD")
@pytest.mark.control("ART11-5-HARDEN")
def test_managed_files_are_owned_by_root_and_not_writable_by_others(
    managed: dict[str, manifest.Entry],
) -> None:
    assert managed, "no file on the host carries the hopthu fingerprint: deploy the host."
    wrong = [
        f"{e.path} ({e.owner}:{e.group} {e.mode})"
        for e in managed.values()
        if (int(e.mode, 8) & 0o002)
        or (e.path.startswith("/etc/") and e.owner != "root")
        or (int(e.mode, 8) & 0o020 and e.group != "root")
    ]
    assert not wrong, (
        f"managed files another user could change: {', '.join(wrong)}. Give them owner "
        "root and a mode without group/other write (e.g. '0644', '0640') in the role."
    )


def render_for(template: str, host_settings: Any, host: Any) -> str:
    from hopthu.render import render

    values = host_settings.template_vars()
    # The engines read the Debian release from the host at deploy time.
    release = host.check_output(". /etc/os-release && echo $VERSION_ID").strip()
    if release.isdigit():
        values["common__debian_major"] = int(release)
    return render(template, values)


@pytest.mark.control("ART3-BUILD")
def test_managed_files_are_exactly_what_the_code_renders(
    host: Any, managed: dict[str, manifest.Entry], headers: dict[str, str],
    host_settings: Any,
) -> None:
    assert managed, "no file on the host carries the hopthu fingerprint: deploy the host."
    drifted: list[str] = []
    for path in sorted(managed):
        match = HEADER_RE.search(headers.get(path, ""))
        if not match:
            continue  # reported by test_managed_files_start_with_the_managed_header
        role, template = match.group(1), match.group(2)
        mirrored = (template.removeprefix(f"{role}/") if role in LAB_ONLY_TEMPLATE_ROOTS
                    else template)
        if path.startswith("/etc/") and "/" + mirrored.removesuffix(".j2") != path:
            drifted.append(f"{path}: its header names templates/{template}, which is not "
                           "at the mirrored path (DESIGN.md §1)")
            continue
        try:
            expected = render_for(template, host_settings, host)
        except Exception as exc:  # noqa: BLE001 - the message is the finding
            drifted.append(f"{path}: templates/{template} does not render here ({exc}); "
                           "a file left over from a removed template?")
            continue
        actual = host.file(path).content_string
        if actual != expected:
            diff = "".join(list(difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                f"rendered templates/{template}", f"{host.backend.hostname}:{path}", n=1))[:30])
            drifted.append(f"{path} differs from templates/{template}:\n{diff}")
    assert not drifted, (
        "managed files differ from what this checkout renders for the host:\n"
        + "\n".join(drifted)
        + "\nRedeploy from this checkout (hopthu deploy) to put them back; if someone "
        "changed the host by hand, move the change into group_vars/ or the template first."
    )
