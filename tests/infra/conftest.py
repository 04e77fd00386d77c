"""The infra suite's plumbing: which hosts, how to reach them, what to expect.

Run it through ``hopthu verify --inventory ENV`` (or ``pytest tests/infra
--inventory ENV``). It is read-only: a test that changes state on a host is
marked ``@pytest.mark.intrusive`` and is skipped unless ``--allow-intrusive``
is given.

Tests ask for a host by the group they check, and run once per host of it:

================  ======================================
fixture           hosts
================  ======================================
``host``          every host of the inventory
``mx_host``       mail_mx
``store_host``    mail_store
``backup_host``   mail_backup
``monitor_host``  mail_monitor (Prometheus, the probes)
``peer_host``     lab_peer (the lab's "Internet")
================  ======================================

``target`` is the host's name, address and groups; ``settings`` its resolved
variables from the settings model, so every expected value is the one the
deploy used. Each test's JUnit entry carries ``host`` and ``inventory``
properties next to the ``control`` ones (tests/conftest.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from hopthu import ROOT
from hopthu.inventory import Inventory

from . import targets, zones

SUITE_CONFIG = Path(__file__).with_name("suite.yml")

#: fixture name -> the inventory group whose hosts it runs on (None: all hosts)
HOST_FIXTURES: dict[str, str | None] = {
    "host": None,
    "mx_host": "mail_mx",
    "store_host": "mail_store",
    "backup_host": "mail_backup",
    "monitor_host": "mail_monitor",
    "peer_host": "lab_peer",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    config = yaml.safe_load(SUITE_CONFIG.read_text(encoding="utf-8"))
    group = parser.getgroup("hopthu", "hopthu infra suite")
    group.addoption(
        "--inventory", default="lab",
        help="the inventory to check: an environment name (lab, staging, production) "
        "or a path to a hosts.yml; default: lab",
    )
    group.addoption(
        "--allow-intrusive", action="store_true", default=False,
        help="also run the checks marked intrusive, which change state on the hosts",
    )
    group.addoption(
        "--host", action="append", dest="hopthu_hosts", metavar="HOST", default=[],
        help="check only this inventory host (repeatable); default: every host",
    )
    group.addoption(
        "--reports-dir", default=None,
        help="where evidence files (Lynis results) go; default: reports/<inventory>/",
    )
    group.addoption(
        "--lynis-min-index", type=int, default=config["lynis"]["min_hardening_index"],
        help="the lowest Lynis hardening index a host may score "
        f"(default {config['lynis']['min_hardening_index']}, from tests/infra/suite.yml)",
    )
    group.addoption(
        "--probe-timeout", type=float, default=config["probe"]["timeout_seconds"],
        help="seconds a TCP probe waits before counting a port as dropped",
    )
    group.addoption(
        "--probe-from", action="append", default=None, metavar="HOST",
        help="an inventory host to probe the firewall from, besides this controller "
        "(repeatable); default: the hosts of group lab_peer",
    )


# --- the session: inventory, targets, connections ---------------------------------


@dataclass
class Suite:
    config: pytest.Config
    inventory: Inventory
    names: list[str]
    suite_config: dict[str, Any]
    _targets: dict[str, targets.Target] = field(default_factory=dict)
    _settings_errors: dict[str, str] = field(default_factory=dict)
    _hosts: dict[str, Any] = field(default_factory=dict)
    _unreachable: dict[str, str] = field(default_factory=dict)
    _ssh_config: Path | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def env(self) -> str:
        return self.inventory.name

    @property
    def reports_dir(self) -> Path:
        option = self.config.getoption("--reports-dir", default=None)
        return Path(option) if option else ROOT / "reports" / self.env

    @property
    def lynis_min_index(self) -> int:
        return int(self.config.getoption(
            "--lynis-min-index", default=self.suite_config["lynis"]["min_hardening_index"]))

    @property
    def lynis_timeout(self) -> int:
        return int(self.suite_config["lynis"]["timeout_seconds"])

    @property
    def probe_timeout(self) -> float:
        return float(self.config.getoption(
            "--probe-timeout", default=self.suite_config["probe"]["timeout_seconds"]))

    def probe_sources(self) -> list[str]:
        """Inventory hosts the firewall is probed from, besides the controller."""
        chosen = self.config.getoption("--probe-from", default=None)
        if chosen is None:
            return self.inventory.hosts_in("lab_peer") if "lab_peer" in self.inventory.groups \
                else []
        unknown = sorted(set(chosen) - set(self.inventory.hosts))
        if unknown:
            raise pytest.UsageError(f"--probe-from {', '.join(unknown)}: not in the inventory")
        return list(chosen)

    def target(self, name: str) -> targets.Target:
        with self._lock:
            if name not in self._targets:
                loaded = None
                try:
                    loaded = targets.load_settings(self.inventory, name)
                    values = dict(loaded.values)
                except Exception as exc:  # noqa: BLE001 - reported by the settings fixture
                    self._settings_errors[name] = f"{type(exc).__name__}: {exc}"
                    values = targets.inventory_vars(self.inventory, name)
                self._targets[name] = targets.Target(
                    name=name,
                    address=str(values.get("ansible_host", self.inventory.hosts[name].address)),
                    groups=self.inventory.host_groups(name),
                    values=values,
                    settings=loaded,
                )
            return self._targets[name]

    def settings_error(self, name: str) -> str | None:
        self.target(name)
        return self._settings_errors.get(name)

    def ssh_config(self) -> Path:
        with self._lock:
            if self._ssh_config is None:
                everyone = [self.target(n) for n in self.inventory.hosts]
                self._ssh_config = targets.ssh_config_for(self.env, everyone, self.reports_dir)
            return self._ssh_config

    def host(self, name: str) -> Any:
        """The testinfra host for `name`; fails the test if it cannot be reached."""
        with self._lock:
            if name not in self._hosts and name not in self._unreachable:
                config = self.ssh_config()
                # A non-root login runs every check through sudo (ansible_become).
                sudo = str(self.target(name).values.get("ansible_user", "root")) != "root"
                h = testinfra.get_host(f"ssh://{name}", ssh_config=str(config), sudo=sudo)
                try:
                    h.run("true")
                    self._hosts[name] = h
                except RuntimeError as exc:
                    detail = getattr(exc.args[0], "stderr", str(exc)) if exc.args else str(exc)
                    self._unreachable[name] = (
                        f"cannot reach {name} over SSH: {str(detail).strip()}\n"
                        f"Try it by hand: ssh -F {config} {name} true. "
                        + ("Is the lab up (hopthu lab status)?" if self.env == "lab" else
                           "Check the inventory's ansible_host/ansible_user/"
                           "ansible_ssh_private_key_file and the host's key in known_hosts.")
                    )
        if name in self._unreachable:
            pytest.fail(self._unreachable[name], pytrace=False)
        return self._hosts[name]

_SUITE_KEY = pytest.StashKey[Suite]()


def pytest_configure(config: pytest.Config) -> None:
    # Defaults too: when pytest starts above tests/ this conftest loads late and
    # its options are unknown (pytest only reads options from initial conftests).
    inv = targets.load_inventory(config.getoption("--inventory", default="lab"))
    wanted = config.getoption("hopthu_hosts", default=None) or []
    unknown = sorted(set(wanted) - set(inv.hosts))
    if unknown:
        raise pytest.UsageError(
            f"--host {', '.join(unknown)}: not in {inv.path}; its hosts are "
            f"{', '.join(inv.hosts)}"
        )
    names = [n for n in inv.hosts if not wanted or n in wanted]
    suite_config = yaml.safe_load(SUITE_CONFIG.read_text(encoding="utf-8"))
    config.stash[_SUITE_KEY] = Suite(config, inv, names, suite_config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    suite = metafunc.config.stash[_SUITE_KEY]
    if "probe_source" in metafunc.fixturenames:
        sources = ["controller", *suite.probe_sources()]
        metafunc.parametrize("probe_source", sources, ids=[f"from-{s}" for s in sources])
    if "hostname" not in metafunc.fixturenames:
        return
    names = list(suite.names)
    for fixture, group in HOST_FIXTURES.items():
        if group and fixture in metafunc.fixturenames:
            members = set(suite.inventory.hosts_in(group)) if group in suite.inventory.groups \
                else set()
            names = [n for n in names if n in members]
    metafunc.parametrize("hostname", names, ids=names, scope="module")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = config.stash[_SUITE_KEY]
    allow = config.getoption("--allow-intrusive", default=False)
    skip = pytest.mark.skip(reason="intrusive: changes state on the host; "
                            "run with --allow-intrusive")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "hostname" in callspec.params:
            item.user_properties.append(("host", callspec.params["hostname"]))
        item.user_properties.append(("inventory", suite.env))
        if item.get_closest_marker("intrusive") and not allow:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    # testinfra raises RuntimeError(CommandResult) when ssh itself fails (exit
    # 255): say that plainly instead of dumping the command object.
    excinfo = call.excinfo
    if report.failed and excinfo is not None and excinfo.type is RuntimeError:
        result = excinfo.value.args[0] if excinfo.value.args else None
        if getattr(result, "exit_status", None) == 255:
            stderr = getattr(result, "stderr", "").strip()
            name = getattr(getattr(item, "callspec", None), "params", {}).get("hostname", "?")
            report.longrepr = (
                f"lost the SSH connection to {name} while checking it: {stderr}\n"
                "The host went away during the run (rebooted, recreated, or the network "
                "dropped): check it is up and run the suite again."
            )
    return report


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="session")
def suite(request: pytest.FixtureRequest) -> Suite:
    return request.config.stash[_SUITE_KEY]


@pytest.fixture(scope="session", autouse=True)
def _inventory_property(record_testsuite_property: Any, suite: Suite) -> None:
    record_testsuite_property("inventory", suite.env)
    record_testsuite_property("inventory_path", str(suite.inventory.path))


@pytest.fixture(scope="module")
def target(suite: Suite, hostname: str) -> targets.Target:
    return suite.target(hostname)


@pytest.fixture(scope="module")
def settings(suite: Suite, hostname: str) -> dict[str, Any]:
    error = suite.settings_error(hostname)
    if error:
        pytest.fail(
            f"the settings of {hostname} did not load, so the suite does not know what to "
            f"expect: {error}\nRun `hopthu settings --inventory {suite.env}` and fix what it "
            "names.", pytrace=False)
    return suite.target(hostname).values


@pytest.fixture(scope="module")
def host_settings(suite: Suite, hostname: str, settings: dict[str, Any]) -> Any:
    """The host's hopthu.settings.Settings: `.values`, `.roles`, `.template_vars()`."""
    return suite.target(hostname).settings


@pytest.fixture(scope="module")
def zone_plan(target: targets.Target, settings: dict[str, Any]) -> zones.ZonePlan:
    return zones.plan(settings, target.groups)


@pytest.fixture(scope="module")
def host(suite: Suite, hostname: str) -> Any:
    return suite.host(hostname)


@pytest.fixture(scope="module")
def mx_host(host: Any) -> Any:
    return host


@pytest.fixture(scope="module")
def store_host(host: Any) -> Any:
    return host


@pytest.fixture(scope="module")
def backup_host(host: Any) -> Any:
    return host


@pytest.fixture(scope="module")
def monitor_host(host: Any) -> Any:
    return host


@pytest.fixture(scope="module")
def peer_host(host: Any) -> Any:
    return host
