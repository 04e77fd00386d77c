"""The Jinja2 filters hopthu's templates may use, shared by both engines.

Ansible loads this file as a filter plugin (ansible.cfg: ``filter_plugins =
filter_plugins``) and calls ``FilterModule().filters()``. hopthu's renderer
(``hopthu.render``) loads the very same file by its path, so both engines run
the same code; nothing here imports Ansible or hopthu.

Rules for a filter in this file:

- pure: the result depends only on the arguments (no time, no host, no
  randomness), so a second run renders the same bytes;
- no Ansible names: a filter named like an Ansible filter (``to_nice_yaml``,
  ``bool``, ``regex_replace``) but behaving differently would render
  differently in the two engines, so none is defined here;
- arguments are read through ``collections.abc`` types: Ansible hands
  filters its own lazy ``dict``/``list`` subclasses;
- bad input raises ``FilterError`` with a message that names the variable
  and says what is allowed (STYLE.md habit 9).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: The string the manifest check and the infra suite grep for on the hosts
#: (hopthu/manifest.py). Keep it stable.
FINGERPRINT_PREFIX = "fingerprint: hopthu:"

#: Comment styles for the managed header: line comments are repeated on each
#: line; block comments open and close around the three lines.
LINE_COMMENTS = ("#", "//", ";", "--")
BLOCK_COMMENTS = {"/*": (" *", " */"), "<!--": ("  ", "-->")}

#: The two firewall zones of Art. 3: the ministry's internal network and the
#: Internet (everything else).
FIREWALL_ZONES = ("internet", "internal")
FIREWALL_PROTOCOLS = ("tcp", "udp")

#: The header's middle line: what to do instead of editing the file.
DO_NOT_EDIT = (
    "Do not edit: changes are overwritten on the next deploy. Change group_vars/ or the template."
)

_ROLE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PORT_RE = re.compile(r"^(tcp|udp)/([0-9]{1,5})$")


class FilterError(ValueError):
    """A filter got input it cannot use; the message says what is allowed."""


def managed_header(template_path: str, role: str, comment: str = "#") -> str:
    """The header every rendered file starts with (STYLE.md habit 5).

    `template_path` is the template's path under ``templates/``, as the
    template names itself: ``{{ 'etc/ssh/sshd_config.j2' | managed_header('common') }}``.
    The result has no trailing newline; the template's own line end follows.
    There is no timestamp and no host name, so the bytes depend only on the
    arguments and a second deploy changes nothing.
    """
    if not isinstance(template_path, str) or not template_path.endswith(".j2"):
        raise FilterError(
            f"managed_header: the template path must be the template's path under "
            f"templates/, ending in .j2 (e.g. 'etc/ssh/sshd_config.j2'), got {template_path!r}"
        )
    if template_path.startswith(("/", "templates/", "./")) or ".." in template_path.split("/"):
        raise FilterError(
            f"managed_header: give the path relative to templates/ "
            f"(e.g. 'etc/ssh/sshd_config.j2'), got {template_path!r}"
        )
    if not isinstance(role, str) or not _ROLE_RE.match(role):
        raise FilterError(
            f"managed_header: the role must be a role name such as 'common' or 'postfix' "
            f"(lower case, digits, underscores), got {role!r}"
        )
    lines = [
        f"Managed by hopthu (role: {role}, template: templates/{template_path}).",
        DO_NOT_EDIT,
        f"{FINGERPRINT_PREFIX}{role}",
    ]
    if comment in LINE_COMMENTS:
        return "\n".join(f"{comment} {line}" for line in lines)
    if comment in BLOCK_COMMENTS:
        inner, close = BLOCK_COMMENTS[comment]
        if comment == "<!--" and any("--" in line for line in lines):
            # XML forbids "--" inside a comment (XML 1.0 §2.5).
            raise FilterError(f"managed_header: {template_path!r} cannot go in an XML comment")
        return "\n".join([comment, *(f"{inner} {line}" for line in lines), close])
    allowed = ", ".join(repr(c) for c in (*LINE_COMMENTS, *BLOCK_COMMENTS))
    raise FilterError(f"managed_header: unknown comment style {comment!r}; allowed: {allowed}")


def _parse_port(service: str, spec: Any) -> tuple[str, int]:
    match = _PORT_RE.match(spec) if isinstance(spec, str) else None
    port = int(match.group(2)) if match else 0
    if not match or not 1 <= port <= 65535:
        raise FilterError(
            f"common__firewall_service_ports.{service}: {spec!r} is not a port; "
            f"write 'tcp/PORT' or 'udp/PORT' with PORT from 1 to 65535, e.g. 'tcp/25'"
        )
    return match.group(1), port


def _names(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise FilterError(f"{where}: must be a list of names, got {value!r}")
    return [str(v) for v in value]


def firewall_zone_ports(
    group_services: Mapping[str, Any],
    host_groups: Sequence[str],
    service_ports: Mapping[str, Any],
) -> dict[str, dict[str, list[int]]]:
    """The ports a host opens, per firewall zone and protocol.

    - `group_services`: ``common__firewall_group_services``, group ->
      ``{internet: [service], internal: [service]}``;
    - `host_groups`: ``common__host_groups``, the host's groups; the group
      ``all`` applies to every host and is added here;
    - `service_ports`: ``common__firewall_service_ports``, service ->
      ``["tcp/25", "udp/53", ...]``.

    A host opens the union over its groups; a group without an entry opens
    nothing. The result always has both zones and both protocols, each a
    sorted list of unique port numbers:
    ``{"internet": {"tcp": [25, 465], "udp": []}, "internal": {...}}``.
    An unknown service, zone or port form raises ``FilterError``.
    """
    if not isinstance(group_services, Mapping):
        raise FilterError(
            f"common__firewall_group_services: must be a mapping of group -> "
            f"{{internet: [...], internal: [...]}}, got {group_services!r}"
        )
    if not isinstance(service_ports, Mapping):
        raise FilterError(
            f"common__firewall_service_ports: must be a mapping of service -> "
            f"['tcp/PORT', ...], got {service_ports!r}"
        )
    groups = ["all", *_names(host_groups, "common__host_groups")]
    result: dict[str, dict[str, set[int]]] = {
        zone: {proto: set() for proto in FIREWALL_PROTOCOLS} for zone in FIREWALL_ZONES
    }
    for group in dict.fromkeys(groups):
        zones = group_services.get(group)
        if zones is None:
            continue
        where = f"common__firewall_group_services.{group}"
        if not isinstance(zones, Mapping):
            raise FilterError(f"{where}: must be a mapping {{internet: [...], internal: [...]}}")
        unknown_zones = sorted(set(map(str, zones)) - set(FIREWALL_ZONES))
        if unknown_zones:
            raise FilterError(
                f"{where}: unknown zone(s) {unknown_zones}; the zones are "
                f"{', '.join(FIREWALL_ZONES)} (Art. 3)"
            )
        for zone, services in zones.items():
            for service in _names(services, f"{where}.{zone}"):
                if service not in service_ports:
                    known = ", ".join(sorted(map(str, service_ports)))
                    raise FilterError(
                        f"{where}.{zone}: unknown service {service!r}; add it to "
                        f"common__firewall_service_ports or use one of: {known}"
                    )
                for spec in _names(
                    service_ports[service], f"common__firewall_service_ports.{service}"
                ):
                    proto, port = _parse_port(service, spec)
                    result[str(zone)][proto].add(port)
    return {
        zone: {proto: sorted(ports) for proto, ports in protos.items()}
        for zone, protos in result.items()
    }


def firewall_source_rules(
    rules: Sequence[Any], service_ports: Mapping[str, Any]
) -> list[dict[str, list[Any]]]:
    """Services a host opens to named sources only, as nftables needs them.

    - `rules`: ``common__firewall_source_services``, a list of
      ``{services: [service], sources: [CIDR]}``: e.g. a split store opens
      LMTP and Dovecot's auth to its MX hosts and to no one else;
    - `service_ports`: ``common__firewall_service_ports``.

    Each rule becomes ``{services, v4, v6, tcp, udp}``: the sources split by
    address family and the ports by protocol, each sorted and unique, in the
    order of the rules. An unknown service or a bad port raises ``FilterError``.
    """
    if rules is None:
        return []
    if isinstance(rules, (str, Mapping)) or not isinstance(rules, Sequence):
        raise FilterError(
            f"common__firewall_source_services: must be a list of {{services, sources}}, "
            f"got {rules!r}"
        )
    result = []
    for index, rule in enumerate(rules):
        where = f"common__firewall_source_services[{index}]"
        if not isinstance(rule, Mapping):
            raise FilterError(f"{where}: must be a mapping {{services: [...], sources: [...]}}")
        services = _names(rule.get("services"), f"{where}.services")
        sources = _names(rule.get("sources"), f"{where}.sources")
        if not services or not sources:
            raise FilterError(f"{where}: needs at least one service and one source")
        ports: dict[str, set[int]] = {proto: set() for proto in FIREWALL_PROTOCOLS}
        for service in services:
            if service not in service_ports:
                known = ", ".join(sorted(map(str, service_ports)))
                raise FilterError(
                    f"{where}.services: unknown service {service!r}; add it to "
                    f"common__firewall_service_ports or use one of: {known}"
                )
            for spec in _names(service_ports[service], f"common__firewall_service_ports.{service}"):
                proto, port = _parse_port(service, spec)
                ports[proto].add(port)
        result.append({
            "services": services,
            "v4": sorted({s for s in sources if ":" not in s}),
            "v6": sorted({s for s in sources if ":" in s}),
            "tcp": sorted(ports["tcp"]),
            "udp": sorted(ports["udp"]),
        })
    return result


class FilterModule:
    """Ansible's entry point; hopthu.render calls it too."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "managed_header": managed_header,
            "firewall_zone_ports": firewall_zone_ports,
            "firewall_source_rules": firewall_source_rules,
        }
