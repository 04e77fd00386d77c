"""The lab as a whole: up, down, recreate, status.

`up` is idempotent and repairs what an interrupted run left: it takes the
lab lock, removes half-made clones, trusts a PID file only after checking
/proc, reuses or repairs the bridge, then brings up only what is missing.
Running hosts are left alone. `down` works from what is on disk and in
/proc, not from the inventory, so it also removes hosts the inventory no
longer names, and it ends by checking that nothing is left.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hopthu.lab import images, machines, network, preflight, proxy, ssh, state
from hopthu.lab.errors import LabError
from hopthu.lab.fs import remove_tree
from hopthu.lab.machines import Machine
from hopthu.lab.processes import container_inits, root_id, tail, terminate
from hopthu.lab.progress import Progress

#: How long a booted host gets to answer SSH with its pinned key.
BOOT_TIMEOUT = 90.0
#: How long systemd gets to finish booting once SSH answers.
SYSTEMD_TIMEOUT = 60.0

T = TypeVar("T")


# --- The inventory -------------------------------------------------------------


def inventory_hosts() -> dict[str, str]:
    """The lab inventory's hosts and addresses, checked against the lab network."""
    from hopthu import inventory

    inv = inventory.load(state.INVENTORY)
    hosts: dict[str, str] = {}
    reserved = {state.NETWORK.network_address, state.NETWORK.broadcast_address,
                ipaddress.ip_address(state.BRIDGE_ADDRESS)}
    for name, host in inv.hosts.items():
        try:
            address = ipaddress.ip_address(host.address)
        except ValueError:
            raise LabError(
                f"{inv.path}: host {name}: ansible_host {host.address!r} is not an IP "
                f"address; a lab host needs one in {state.NETWORK}", exit_code=2,
            ) from None
        if address not in state.NETWORK or address in reserved:
            raise LabError(
                f"{inv.path}: host {name}: ansible_host {address} must be in "
                f"{state.NETWORK}, and not .0, .1 (the bridge) or .255", exit_code=2,
            )
        if str(address) in hosts.values():
            raise LabError(f"{inv.path}: host {name}: address {address} is used twice",
                           exit_code=2)
        if len(f"vb-{name}") > 15:
            # nspawn names the bridge port vb-<name>; Linux allows 15 characters.
            raise LabError(f"{inv.path}: host name {name!r} is too long for the lab "
                           f"(at most 12 characters)", exit_code=2)
        hosts[name] = str(address)
    return hosts


def _select(names: Sequence[str] | None, known: dict[str, str]) -> list[Machine]:
    if not names:
        return [Machine(name, address) for name, address in known.items()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise LabError(f"not in inventories/lab/hosts.yml: {', '.join(unknown)}; "
                       f"the lab hosts are {', '.join(known)}", exit_code=2)
    return [Machine(name, known[name]) for name in dict.fromkeys(names)]


def _parallel(items: Sequence[Machine], work: Callable[[Machine], T]) -> dict[str, T | Exception]:
    """Run `work` for each host at once; collect results or exceptions by name."""
    results: dict[str, T | Exception] = {}
    if not items:
        return results
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = {machine.name: pool.submit(work, machine) for machine in items}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except Exception as exc:  # noqa: BLE001 - reported per host below
                results[name] = exc
    return results


# --- up --------------------------------------------------------------------------


def up(
    hosts: Sequence[str] | None = None,
    suite: str | None = None,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Bring up the lab, or the named hosts and what they need; return status().

    `suite` chooses the Debian release of clones made now (default trixie, or
    $HOPTHU_LAB_SUITE). Given explicitly, it must match existing clones:
    the lab never mixes releases silently.
    """
    preflight.check()
    progress = progress or Progress()
    with state.lab_lock():
        known = inventory_hosts()
        _up_locked(_select(hosts, known), suite, progress, known)
    return status()


def _up_locked(
    selected: list[Machine], suite: str | None, progress: Progress, known: dict[str, str],
) -> None:
    _refuse_mismatches(selected, suite)
    # New clones join the release the lab already runs, unless asked otherwise:
    # a plain `up` after `up --suite bookworm` must not add trixie hosts.
    existing = {info["suite"] for name in known if (info := machines.clone_info(name))}
    default_suite = state.check_suite(
        suite or (existing.pop() if len(existing) == 1 else state.DEFAULT_SUITE)
    )

    with progress.step("lab", "lab key") as outcome:
        existed = state.key_path().exists()
        public_key = ssh.ensure_key()
        outcome.text = f"{'kept' if existed else 'made'} {state.key_path()}"
    for partial in machines.partial_clones():
        with progress.step("lab", f"remove half-made clone {partial.name}"):
            remove_tree(partial)
    with progress.step("lab", f"bridge {state.BRIDGE} {state.bridge_cidr()}") as outcome:
        outcome.text = network.ensure_bridge()
    with progress.step("lab", f"firewall (nftables table inet {network.NFT_TABLE})") as outcome:
        outcome.text = network.ensure_isolation()
    with progress.step("lab", f"apt proxy {state.proxy_url()}") as outcome:
        outcome.text = proxy.ensure_proxy()

    to_clone = {m.name: default_suite for m in selected if machines.clone_info(m.name) is None}
    for image_suite in sorted(set(to_clone.values())):
        cached = images.info(image_suite) is not None
        with progress.step("lab", f"image {image_suite}",
                           announce="" if cached else "building (about 1-2 min)") as outcome:
            outcome.text = images.ensure_image(image_suite, state.proxy_url())

    def bring_up(machine: Machine) -> str:
        pid = machines.running_pid(machine.name)
        if pid is not None:
            progress.line(machine.name, f"running, pid {pid}: left alone")
            return "running"
        # A host whose nspawn was killed may still run, orphaned, and hold its veth.
        cleared = machines.clear_leftovers(machine.name)
        if cleared:
            progress.line(machine.name, f"leftovers of a crashed run: {cleared}")
        if machine.name in to_clone:
            with progress.step(machine.name, "clone") as outcome:
                machines.make_clone(machine, to_clone[machine.name], public_key)
                outcome.text = f"{to_clone[machine.name]}, {machine.address}"
        with progress.step(machine.name, "boot") as outcome:
            outcome.text = f"started, pid {machines.boot(machine.name)}"
        return "booted"

    failures = _failures(_parallel(selected, bring_up))

    # Pin every clone's key (not only the selected ones: the files are shared).
    with progress.step("lab", "pin host keys and write ssh config") as outcome:
        pinned = {name: (address, machines.host_key(name)) for name, address in known.items()
                  if machines.clone_info(name) is not None}
        ssh.write_known_hosts(pinned)
        ssh.write_config(known)
        outcome.text = f"{len(pinned)} hosts in {state.known_hosts_path()}"

    def check(machine: Machine) -> str:
        if machine.name in failures:
            raise LabError(str(failures[machine.name]))
        with progress.step(machine.name, "ssh") as outcome:
            ok, complaint = ssh.wait_for(machine.name, timeout=BOOT_TIMEOUT)
            if not ok:
                raise LabError(
                    f"{machine.name} did not accept SSH within {BOOT_TIMEOUT:.0f} s "
                    f"({complaint}). Its console ({machines.console_log(machine.name)}):\n"
                    f"{_console_tail(machine.name)}\n"
                    f"Try `hopthu lab recreate {machine.name}`."
                )
            outcome.text = "answers with the pinned key"
        with progress.step(machine.name, "systemd") as outcome:
            outcome.text = systemd_state(machine.name)
        return "ok"

    failures = _failures(_parallel(selected, check))
    if failures:
        details = "\n".join(f"  {name}: {exc}" for name, exc in failures.items())
        raise LabError(f"{len(failures)} of {len(selected)} hosts did not come up:\n{details}")


def _console_tail(name: str) -> str:
    return tail(machines.console_log(name))


def _failures(results: dict[str, Any]) -> dict[str, Exception]:
    return {name: value for name, value in results.items() if isinstance(value, Exception)}


def _refuse_mismatches(selected: list[Machine], suite: str | None) -> None:
    problems = []
    for machine in selected:
        info = machines.clone_info(machine.name)
        if info is None:
            continue
        if suite and info.get("suite") != suite:
            problems.append(
                f"{machine.name} is a {info.get('suite')} clone, and you asked for {suite}: "
                f"run `hopthu lab recreate --suite {suite} {machine.name}` "
                f"(this replaces the host)"
            )
        if info.get("address") and info["address"] != machine.address:
            problems.append(
                f"{machine.name} was made with address {info['address']}, and the inventory "
                f"now says {machine.address}: run `hopthu lab recreate {machine.name}`"
            )
    if problems:
        raise LabError("refusing to mix clones:\n  " + "\n  ".join(problems), exit_code=2)


def systemd_state(name: str) -> str:
    """`systemctl is-system-running --wait`, and the failed units if degraded."""
    rc, out, err = ssh.ssh_run(name, "systemctl is-system-running --wait",
                               timeout=SYSTEMD_TIMEOUT)
    overall = out.strip() or err.strip() or f"rc {rc}"
    if overall == "degraded":
        _, failed, _ = ssh.ssh_run(name, "systemctl --failed --plain --no-legend", timeout=30)
        units = [line.split()[0] for line in failed.splitlines() if line.strip()]
        return f"degraded (failed: {', '.join(units) or 'none listed'})"
    return overall


# --- recreate ----------------------------------------------------------------------


def recreate(
    name: str, suite: str | None = None, *, progress: Progress | None = None,
) -> dict[str, Any]:
    """Stop and delete one host's clone, then make and boot a fresh one.

    The new clone keeps the old one's suite unless `suite` is given.
    """
    preflight.check()
    progress = progress or Progress()
    with state.lab_lock():
        known = inventory_hosts()
        [machine] = _select([name], known)
        info = machines.clone_info(name)
        chosen = state.check_suite(
            suite or (info or {}).get("suite") or state.DEFAULT_SUITE
        )
        with progress.step(name, "stop") as outcome:
            outcome.text = machines.stop(name)
        with progress.step(name, "remove clone") as outcome:
            machines.remove(name)
            outcome.text = f"removed {machines.root(name)}"
        _up_locked([machine], chosen, progress, known)
    return status()


# --- down ------------------------------------------------------------------------


def down(*, progress: Progress | None = None) -> dict[str, Any]:
    """Remove everything `up` made except the image cache, the apt cache and the key."""
    preflight.check(preflight.TEARDOWN_COMMANDS)
    progress = progress or Progress()
    with state.lab_lock():
        names = sorted(set(machines.clone_names()) | _names_with_pid_files())
        targets = [Machine(name, "") for name in names]

        def stop(machine: Machine) -> None:
            with progress.step(machine.name, "stop") as outcome:
                outcome.text = machines.stop(machine.name)

        failures = _failures(_parallel(targets, stop))
        for pid in machines.lab_nspawn_processes():
            with progress.step("lab", f"stop untracked systemd-nspawn {pid}") as outcome:
                outcome.text = terminate(pid, grace=machines.STOP_GRACE)
        with progress.step("lab", "apt proxy") as outcome:
            outcome.text = proxy.stop_proxy()
        if shutil.which("nft"):
            with progress.step("lab", "firewall") as outcome:
                outcome.text = network.remove_isolation()
        with progress.step("lab", f"bridge {state.BRIDGE}") as outcome:
            outcome.text = network.remove_bridge()

        def remove(machine: Machine) -> None:
            if machine.name in failures:
                raise LabError(f"not removed: stopping failed ({failures[machine.name]})")
            with progress.step(machine.name, "remove clone"):
                machines.remove(machine.name)

        failures.update(_failures(_parallel(targets, remove)))
        for partial in machines.partial_clones():
            with progress.step("lab", f"remove half-made clone {partial.name}"):
                remove_tree(partial)
        with progress.step("lab", "run state, ssh config, known_hosts") as outcome:
            ssh.remove_files()
            remove_tree(state.RUN_DIR)
            proxy.remove_state()
            if state.MACHINES_DIR.is_dir() and not any(state.MACHINES_DIR.iterdir()):
                state.MACHINES_DIR.rmdir()
            outcome.text = f"removed (kept {state.key_path()}, images and apt cache)"
    result = status(check_ssh=False)
    if failures or result["state"] != "absent":
        left = "; ".join(result["problems"]) or "see `hopthu lab status`"
        details = "; ".join(f"{name}: {exc}" for name, exc in failures.items())
        raise LabError(f"`down` left things behind: {details or left}")
    return result


def _dir_id(directory: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(directory)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _names_with_pid_files() -> set[str]:
    if not state.RUN_DIR.is_dir():
        return set()
    return {p.stem for p in state.RUN_DIR.glob("*.pid")} - {"apt-cacher-ng"}


# --- status ------------------------------------------------------------------------


def status(*, check_ssh: bool = True) -> dict[str, Any]:
    """What exists: bridge, firewall, proxy, each host, and any leftovers.

    ``state`` is "up" (everything in the inventory runs and answers SSH),
    "absent" (nothing of the lab exists: no nspawn process, no bridge, no
    clone, no proxy) or "partial"; ``problems`` says what is wrong and what
    to do.
    """
    known = inventory_hosts()
    bridge = network.bridge_status()
    firewall = network.isolation_present() if shutil.which("nft") else None
    proxy_status = proxy.status()

    hosts: dict[str, dict[str, Any]] = {}
    for name, address in known.items():
        info = machines.clone_info(name)
        pid = machines.running_pid(name)
        hosts[name] = {
            "address": address,
            "clone": info is not None,
            "suite": (info or {}).get("suite"),
            "running": pid is not None,
            "pid": pid,
            "ssh": None,
        }
    probing = [Machine(n, h["address"]) for n, h in hosts.items()
               if check_ssh and h["running"] and state.ssh_config_path().exists()]
    for name, result in _parallel(probing, lambda m: ssh.probe(m.name)[0]).items():
        hosts[name]["ssh"] = result is True

    # Anything of the lab that no inventory host accounts for.
    tracked = {host["pid"] for host in hosts.values()}
    running_roots = {_dir_id(machines.root(name)) for name, h in hosts.items() if h["running"]}
    leftovers = {
        "clones_not_in_inventory": [n for n in machines.clone_names() if n not in known],
        "half_made_clones": [str(p) for p in machines.partial_clones()],
        "untracked_nspawn_processes": [
            pid for pid in machines.lab_nspawn_processes() if pid not in tracked
        ],
        # A host whose nspawn died (SIGKILL) runs on without it.
        "orphaned_hosts": [
            pid for pid in container_inits() if root_id(pid) not in running_roots
        ],
    }

    problems = []
    if bridge["present"] and not (bridge["up"] and bridge["has_lab_address"]):
        problems.append(f"bridge {state.BRIDGE} is down or lacks {state.bridge_cidr()}")
    if proxy_status["running"] and not proxy_status["answers"]:
        problems.append(f"the apt proxy (pid {proxy_status['pid']}) does not answer")
    for name, host in hosts.items():
        if not host["clone"]:
            problems.append(f"{name}: no clone")
        elif not host["running"]:
            problems.append(f"{name}: not running")
        elif host["ssh"] is False:
            problems.append(f"{name}: running but SSH does not answer "
                            f"(see {machines.console_log(name)})")
    for kind, items in leftovers.items():
        if items:
            problems.append(f"{kind.replace('_', ' ')}: {items}")

    anything = (bridge["present"] or bool(firewall) or proxy_status["running"]
                or any(h["clone"] or h["running"] for h in hosts.values())
                or any(leftovers.values()))
    everything = (bridge["present"] and bridge["up"] and bridge["has_lab_address"]
                  and proxy_status["answers"]
                  and all(h["running"] and (h["ssh"] or not check_ssh) for h in hosts.values()))
    if not anything:
        lab_state = "absent"
        problems = []
    elif everything and not any(leftovers.values()):
        lab_state = "up"
    else:
        lab_state = "partial"
        if not bridge["present"]:
            problems.insert(0, f"no bridge {state.BRIDGE}")
        if not proxy_status["running"]:
            problems.insert(0, "the apt proxy is not running")
    return {
        "state": lab_state,
        "bridge": bridge,
        "firewall": firewall,
        "proxy": proxy_status,
        "hosts": hosts,
        "leftovers": leftovers,
        "problems": problems,
        "ssh_config": str(state.ssh_config_path()),
    }
