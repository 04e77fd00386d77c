"""hopthu.render and filter_plugins/hopthu_filters.py, one behaviour per test.

Byte parity with Ansible is proven by test_template_parity.py; these tests
pin the behaviours one by one, with messages a template author can act on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hopthu.render import ANSIBLE_ONLY_NAMES, RenderError, environment, load_filters, render

FILTERS = load_filters()
managed_header = FILTERS["managed_header"]
firewall_zone_ports = FILTERS["firewall_zone_ports"]
firewall_source_rules = FILTERS["firewall_source_rules"]


@pytest.fixture
def templates(tmp_path: Path):
    """Write templates into a fresh templates directory and render them."""

    def write(files: dict[str, str]) -> Path:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return tmp_path

    return write


def render_text(templates, text: str, variables: dict | None = None, **partials: str) -> str:
    files = {"t.j2": text, **{f"_partials/{name}.j2": body for name, body in partials.items()}}
    return render("t.j2", variables or {}, templates_dir=templates(files))


# --- The managed header ---------------------------------------------------------------


def test_managed_header_names_the_role_and_template_and_ends_with_the_fingerprint() -> None:
    assert managed_header("etc/ssh/sshd_config.j2", "common") == (
        "# Managed by hopthu (role: common, template: templates/etc/ssh/sshd_config.j2).\n"
        "# Do not edit: changes are overwritten on the next deploy. "
        "Change group_vars/ or the template.\n"
        "# fingerprint: hopthu:common"
    )


@pytest.mark.parametrize("comment", ["#", "//", ";", "--"])
def test_managed_header_prefixes_every_line_with_a_line_comment(comment: str) -> None:
    lines = managed_header("etc/x.conf.j2", "postfix", comment).split("\n")
    assert len(lines) == 3
    assert all(line.startswith(f"{comment} ") for line in lines)
    assert lines[-1] == f"{comment} fingerprint: hopthu:postfix"


@pytest.mark.parametrize(
    ("comment", "first", "inner", "last"),
    [("/*", "/*", " * ", " */"), ("<!--", "<!--", "   ", "-->")],
)
def test_managed_header_wraps_a_block_comment_around_the_lines(
    comment: str, first: str, inner: str, last: str
) -> None:
    lines = managed_header("srv/autoconfig.xml.j2", "nginx", comment).split("\n")
    assert lines[0] == first and lines[-1] == last
    assert lines[1:4] == [
        inner + line[2:] for line in managed_header("srv/autoconfig.xml.j2", "nginx").split("\n")
    ]


def test_managed_header_is_the_same_on_every_call_so_deploys_stay_idempotent() -> None:
    first = managed_header("etc/timezone.j2", "common")
    assert first == managed_header("etc/timezone.j2", "common")
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", first), "no timestamps in the header"


def test_managed_header_keeps_the_fingerprint_the_manifest_greps_for() -> None:
    manifest = pytest.importorskip("hopthu.manifest")
    fingerprint = getattr(manifest, "FINGERPRINT", "fingerprint: hopthu:")
    assert managed_header("etc/x.j2", "common").endswith(f"{fingerprint}common")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("templates/etc/x.j2", "common"), "relative to templates/"),
        (("/etc/x.j2", "common"), "relative to templates/"),
        (("etc/x.conf", "common"), "ending in .j2"),
        (("etc/x.j2", "Common"), "role name"),
        (("etc/x.j2", ""), "role name"),
        (("etc/x.j2", "common", "%"), "unknown comment style '%'"),
    ],
)
def test_managed_header_rejects_bad_arguments_with_the_allowed_form(
    args: tuple, complaint: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        managed_header(*args)


def test_managed_header_renders_as_the_first_lines_of_a_template(templates) -> None:
    text = render_text(templates, "{{ 't.j2' | managed_header('common') }}\nkey = 1\n")
    assert text == managed_header("t.j2", "common") + "\nkey = 1\n"


# --- Settings matched to Ansible's template action --------------------------------------


def test_trim_blocks_removes_the_newline_after_a_block_tag_and_lstrip_blocks_is_off(
    templates,
) -> None:
    text = render_text(templates, "a\n  {% if true %}\nb\n  {% endif %}\nc\n")
    assert text == "a\n  b\n  c\n"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = {{ v }}\n", "x = 1\n"),
        ("x = {{ v }}", "x = 1"),
        ("x = {{ v }}\n\n\n", "x = 1\n\n\n"),
        ("{% if true %}\nx\n{% endif %}\n", "x\n"),
        # Ansible counts the source's trailing newlines, not the output's.
        ("{% if false %}\nx\n{% endif %}\n\n", "\n\n"),
    ],
    ids=["one", "none", "three", "block-last", "empty-block-then-blank"],
)
def test_the_file_ends_with_as_many_newlines_as_the_source(
    templates, source: str, expected: str
) -> None:
    assert render_text(templates, source, {"v": 1}) == expected


def test_an_included_partial_loses_its_last_newline(templates) -> None:
    text = render_text(templates, "[{% include '_partials/p.j2' %}]\n", p="inside\n")
    assert text == "[inside]\n"


def test_none_prints_as_empty_but_stays_none_inside_containers(templates) -> None:
    text = render_text(templates, "a={{ n }} b={{ [n] }} c={{ n ~ '' }}\n", {"n": None})
    assert text == "a= b=[None] c=None\n"


def test_containers_print_as_ansible_prints_them(templates) -> None:
    text = render_text(
        templates,
        "{{ d | dictsort }} {{ d.items() }} {{ l | map('upper') }} {{ (1, 2) }}\n",
        {"d": {"b": 1, "a": True}, "l": ["x"]},
    )
    assert text == "[['a', True], ['b', 1]] [['b', 1], ['a', True]] ['X'] [1, 2]\n"


def test_vietnamese_text_is_rendered_unchanged(templates) -> None:
    name = "Bộ Tư pháp — Trung tâm Tích hợp dữ liệu"
    assert (
        render_text(templates, "{{ n }} · Thư điện tử\n", {"n": name}) == f"{name} · Thư điện tử\n"
    )


def test_the_environment_is_shared_between_renders() -> None:
    assert environment() is environment()


# --- Errors name the template, the line and the cause --------------------------------------


def test_an_undefined_variable_names_the_template_line_and_variable(templates) -> None:
    with pytest.raises(RenderError) as info:
        render_text(templates, "a\nb\nport = {{ postfix__port }}\n")
    assert info.value.template == "t.j2" and info.value.line == 3
    assert "t.j2, line 3" in str(info.value)
    assert "'postfix__port' is undefined" in str(info.value)


def test_an_undefined_attribute_fails_instead_of_rendering_empty(templates) -> None:
    with pytest.raises(RenderError, match="has no attribute 'missing'"):
        render_text(templates, "{{ d.missing }}\n", {"d": {}})


def test_an_error_in_a_partial_names_the_partial_and_the_template(templates) -> None:
    with pytest.raises(RenderError) as info:
        render_text(templates, "x\n{% include '_partials/p.j2' %}\n", p="ok\n{{ nope }}\n")
    assert info.value.where == "_partials/p.j2" and info.value.line == 2
    assert "(included by " in str(info.value) and "t.j2" in str(info.value)


def test_defined_tests_and_default_still_work_under_strict_undefined(templates) -> None:
    text = render_text(templates, "{{ x | default('d') }} {{ x is defined }}\n")
    assert text == "d False\n"


@pytest.mark.parametrize("name", ["inventory_hostname", "group_names", "hostvars", "ansible_host"])
def test_an_ansible_magic_variable_fails_even_when_the_settings_carry_it(
    templates, name: str
) -> None:
    with pytest.raises(RenderError, match="Ansible magic or connection variable"):
        render_text(templates, f"{{{{ {name} }}}}\n", {name: "set-by-settings"})
    assert name in ANSIBLE_ONLY_NAMES or name.startswith("ansible_")


@pytest.mark.parametrize("name", ["to_nice_yaml", "to_json", "regex_replace", "bool", "ternary"])
def test_an_ansible_only_filter_fails_at_compile_time_with_the_rule(templates, name: str) -> None:
    with pytest.raises(RenderError) as info:
        render_text(templates, f"ok\n{{{{ x | {name} }}}}\n", {"x": "1"})
    assert info.value.line == 2
    assert f"No filter named '{name}'" in str(info.value)
    assert "Ansible-only" in str(info.value)


def test_an_ansible_only_test_fails_at_compile_time(templates) -> None:
    with pytest.raises(RenderError, match="No test named 'version'"):
        render_text(templates, "{% if v is version('2.4', '>=') %}x{% endif %}\n", {"v": "2.4"})


def test_lookup_is_refused_as_ansible_only(templates) -> None:
    with pytest.raises(RenderError, match=r"lookup\(\) is an Ansible-only function"):
        render_text(templates, "{{ lookup('file', '/etc/hostname') }}\n")


def test_a_jinja2_override_line_is_refused(templates) -> None:
    with pytest.raises(RenderError, match="'#jinja2:' override lines are not allowed"):
        render_text(templates, "#jinja2: lstrip_blocks: True\nx\n")


def test_a_syntax_error_names_its_line(templates) -> None:
    with pytest.raises(RenderError, match=r"t\.j2, line 2: .*endfor"):
        render_text(templates, "ok\n{% for x in y %}\n")


def test_a_missing_partial_says_where_partials_are_named_from(templates) -> None:
    with pytest.raises(RenderError, match="'_partials/none.j2' not found"):
        render_text(templates, "{% include '_partials/none.j2' %}\n")


# --- Loading filter_plugins/ -------------------------------------------------------------


def test_filter_plugins_provide_exactly_the_documented_filters() -> None:
    assert set(FILTERS) == {
        "managed_header",
        "firewall_zone_ports",
        "firewall_source_rules",
        # filter_plugins/hopthu_dnssec.py: the lab's signed peer zone (DANE)
        "dnssec_lab_sign",
        "dnssec_lab_trust_anchor",
        "dane_tlsa_311_from_file",
        # filter_plugins/hopthu_dns.py: the ministry's published DNS records
        "dns_dkim_keys",
        "dns_mail_zone",
        "dns_mta_sts_policy",
        "dns_reverse_zone",
        "dns_reverse_zone_records",
        # filter_plugins/hopthu_accounts.py: the accounts registry (roles/userdb)
        "accounts_registry",
        "accounts_registry_present",
        "accounts_registry_commit",
        "accounts_operator",
        "accounts_directory",
        # filter_plugins/hopthu_backup.py: the keys exchanged through the controller
        "backup_client_keys",
        "backup_host_key",
    }


def test_a_filter_defined_twice_is_refused(tmp_path: Path) -> None:
    plugin = "class FilterModule:\n    def filters(self):\n        return {'twice': str}\n"
    (tmp_path / "a.py").write_text(plugin)
    (tmp_path / "b.py").write_text(plugin)
    with pytest.raises(ImportError, match="'twice' is defined in both a.py and b.py"):
        load_filters(tmp_path)


def test_a_filter_shadowing_a_jinja_builtin_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(
        "class FilterModule:\n    def filters(self):\n        return {'join': str}\n"
    )
    with pytest.raises(ImportError, match="'join', a Jinja2 built-in filter"):
        environment(tmp_path / "templates", tmp_path)


# --- firewall_zone_ports ------------------------------------------------------------------

SERVICE_PORTS = {
    "ssh": ["tcp/22"],
    "smtp": ["tcp/25"],
    "submission": ["tcp/587"],
    "imaps": ["tcp/993"],
    "metrics": ["tcp/9100"],
    "dns": ["udp/53", "tcp/53"],
}
GROUP_SERVICES = {
    "all": {"internet": [], "internal": ["ssh", "metrics"]},
    "mail_mx": {"internet": ["smtp", "submission"], "internal": []},
    "mail_store": {"internet": ["imaps"], "internal": ["ssh"]},
    "lab_peer": {"internet": ["dns"], "internal": ["dns"]},
}


def test_a_host_opens_the_union_of_its_groups_and_all() -> None:
    ports = firewall_zone_ports(GROUP_SERVICES, ["mail_mx", "mail_store"], SERVICE_PORTS)
    assert ports == {
        "internet": {"tcp": [25, 587, 993], "udp": []},
        "internal": {"tcp": [22, 9100], "udp": []},
    }


def test_ports_are_unique_and_sorted_as_numbers() -> None:
    ports = firewall_zone_ports(
        {"all": {"internet": ["metrics", "imaps", "metrics"]}}, [], SERVICE_PORTS
    )
    assert ports["internet"]["tcp"] == [993, 9100]


def test_a_service_with_tcp_and_udp_ports_opens_both() -> None:
    ports = firewall_zone_ports(GROUP_SERVICES, ["lab_peer"], SERVICE_PORTS)
    assert ports["internet"] == {"tcp": [53], "udp": [53]}


def test_a_group_without_firewall_entry_opens_nothing_more() -> None:
    ports = firewall_zone_ports(GROUP_SERVICES, ["mail_backup", "ungrouped"], SERVICE_PORTS)
    assert ports == {
        "internet": {"tcp": [], "udp": []},
        "internal": {"tcp": [22, 9100], "udp": []},
    }


def test_an_unknown_service_names_the_group_zone_and_known_services() -> None:
    bad = {**GROUP_SERVICES, "mail_mx": {"internet": ["smtps"], "internal": []}}
    with pytest.raises(ValueError) as info:
        firewall_zone_ports(bad, ["mail_mx"], SERVICE_PORTS)
    message = str(info.value)
    assert "common__firewall_group_services.mail_mx.internet: unknown service 'smtps'" in message
    assert "dns, imaps, metrics, smtp, ssh, submission" in message


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown zone\(s\) \['dmz'\]"):
        firewall_zone_ports({"all": {"dmz": ["ssh"]}}, [], SERVICE_PORTS)


@pytest.mark.parametrize("spec", ["tcp/70000", "sctp/5", "25", "tcp/0", 25])
def test_a_bad_port_spec_is_refused_with_the_allowed_form(spec: object) -> None:
    with pytest.raises(ValueError, match=re.escape("write 'tcp/PORT' or 'udp/PORT'")):
        firewall_zone_ports({"all": {"internet": ["x"]}}, [], {"x": [spec]})


def test_host_groups_as_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="common__host_groups: must be a list"):
        firewall_zone_ports(GROUP_SERVICES, "mail_mx", SERVICE_PORTS)


def test_the_firewall_filter_error_reaches_the_template_author(templates) -> None:
    source = "x\n{% set p = g | firewall_zone_ports(h, s) %}\n"
    with pytest.raises(RenderError, match=r"t\.j2, line 2: .*unknown service 'nope'"):
        render_text(templates, source, {"g": {"all": {"internet": ["nope"]}}, "h": [], "s": {}})


def test_source_rules_split_sources_by_family_and_ports_by_protocol() -> None:
    rules = firewall_source_rules(
        [{"services": ["dns", "ssh"], "sources": ["198.51.100.12/32", "2001:db8::/64",
                                                  "198.51.100.11/32"]}],
        SERVICE_PORTS,
    )
    assert rules == [{
        "services": ["dns", "ssh"],
        "v4": ["198.51.100.11/32", "198.51.100.12/32"],
        "v6": ["2001:db8::/64"],
        "tcp": [22, 53],
        "udp": [53],
    }]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"services": ["lmtp"], "sources": ["10.0.0.1/32"]}],
         r"common__firewall_source_services\[0\]\.services: unknown service 'lmtp'"),
        ([{"services": ["ssh"], "sources": []}], "needs at least one service and one source"),
        ({"services": ["ssh"]}, "must be a list"),
    ],
)
def test_a_bad_source_rule_is_refused_with_where_it_is(rules: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        firewall_source_rules(rules, SERVICE_PORTS)


def test_the_split_store_opens_dovecot_to_its_mx_hosts_only() -> None:
    """Production's store1: LMTP, auth and quota-status from mx1 and mx2, and from no one else."""
    from hopthu.render import render, template_variables
    from hopthu.settings import load_host

    config = render("etc/nftables.conf.j2", template_variables(load_host("production", "store1").template_vars()))
    rule = "ip saddr { 198.51.100.11/32, 198.51.100.12/32 } tcp dport { 24, 12340, 12345 } accept"
    assert rule in config
    # Nowhere else: no zone's port set (internal or Internet) holds them.
    zone_sets = [line for line in config.splitlines() if "elements = " in line]
    for port in ("24", "12340", "12345"):
        assert not any(re.search(rf"[{{ ]{port}[,}} ]", line) for line in zone_sets), zone_sets
    mx = render("etc/nftables.conf.j2", template_variables(load_host("production", "mx1").template_vars()))
    assert "12345" not in mx
