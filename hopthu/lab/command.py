"""`hopthu lab`: build, inspect and remove the lab (DESIGN.md §5).

    hopthu lab up [--suite trixie|bookworm] [HOST ...]
    hopthu lab down
    hopthu lab status [--json]
    hopthu lab ssh HOST [COMMAND ...]
    hopthu lab recreate [--suite trixie|bookworm] HOST

Exit codes: 0 done; 1 something failed (the message says what, and what to
do); 2 the request cannot be carried out as asked (not root, a missing
command, an unknown host, a clone of another suite). `status` exits 0 when
every inventory host is up, 3 when nothing of the lab exists, 1 in between.
`ssh` exits with ssh's code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from hopthu.lab import state

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_ABSENT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    suites = ", ".join(state.SUITES)

    up = sub.add_parser(
        "up", help="build and boot the lab hosts (idempotent)",
        description="Build (or reuse) the bridge, the apt proxy, the cached base image and "
                    "one systemd-nspawn host per inventory host, then wait until each "
                    "answers SSH with its pinned key. Running hosts are left alone.",
    )
    up.add_argument("--suite", choices=list(state.SUITES), default=None,
                    help=f"Debian suite of new clones ({suites}; default {state.DEFAULT_SUITE}, "
                         f"or $HOPTHU_LAB_SUITE). Existing clones must match it.")
    up.add_argument("hosts", nargs="*", metavar="HOST",
                    help="only these hosts (default: every host in inventories/lab)")

    sub.add_parser(
        "down", help="stop every host and remove clones, proxy, bridge and run state",
        description="Stop every lab host, the apt proxy and the bridge, and delete the "
                    "clones and run state. The image cache, the apt cache and the lab "
                    "key are kept, so the next `up` takes seconds.",
    )

    status = sub.add_parser(
        "status", help="show bridge, proxy and hosts; exit 0 up, 1 partial, 3 absent",
        description="Show the bridge, the firewall table, the apt proxy and each host. "
                    "Exit 0 when every inventory host is up, 3 when nothing exists, "
                    "1 otherwise.",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    ssh = sub.add_parser("ssh", help="ssh to a lab host (as root, pinned host key)")
    ssh.add_argument("host", metavar="HOST")
    ssh.add_argument("remote", nargs=argparse.REMAINDER, metavar="COMMAND",
                     help="a command to run instead of a login shell")

    recreate = sub.add_parser(
        "recreate", help="replace one host with a fresh clone",
        description="Stop the host, delete its clone, make a fresh one from the cached "
                    "image and boot it. Everything deployed to the host is lost.",
    )
    recreate.add_argument("--suite", choices=list(state.SUITES), default=None,
                          help="suite of the new clone (default: the old clone's)")
    recreate.add_argument("host", metavar="HOST")

    sub.add_parser(
        "summary", help="hosts, their services and the last infra-suite result",
        description="What `make lab` prints at the end: each host with its groups and "
                    "the state of hopthu's services, the last `hopthu verify` result, and "
                    "how to go on. Exit 0 when everything is up and the suite passed.",
    )


def run(args: argparse.Namespace) -> int:
    from hopthu.lab.errors import LabError

    try:
        if args.lab_command == "ssh":
            return _ssh(args.host, args.remote)
        if args.lab_command == "status":
            return _status(as_json=args.json)
        if args.lab_command == "summary":
            from hopthu.lab.summary import render

            text, ok = render()
            print(text)
            return EXIT_OK if ok else EXIT_PARTIAL
        from hopthu.lab import lifecycle
        from hopthu.lab.progress import Progress

        progress = Progress()
        if args.lab_command == "up":
            result = lifecycle.up(args.hosts, args.suite, progress=progress)
            _summary(result)
        elif args.lab_command == "down":
            lifecycle.down(progress=progress)
            print("lab: down (no nspawn process, no bridge, no clone left)")
        elif args.lab_command == "recreate":
            _summary(lifecycle.recreate(args.host, args.suite, progress=progress))
        return EXIT_OK
    except LabError as exc:
        print(f"hopthu lab {args.lab_command}: {exc}", file=sys.stderr)
        return exc.exit_code


def _ssh(host: str, remote: list[str]) -> int:
    from hopthu.lab.lifecycle import inventory_hosts

    known = inventory_hosts()
    if host not in known:
        print(f"hopthu lab ssh: {host} is not a lab host; the hosts are {', '.join(known)}",
              file=sys.stderr)
        return 2
    config = state.ssh_config_path()
    if not config.exists():
        print(f"hopthu lab ssh: no {config}: the lab is not up; run `hopthu lab up`",
              file=sys.stderr)
        return 2
    state.CONTROL_DIR.mkdir(mode=0o700, exist_ok=True)
    argv = ["ssh", "-F", str(config)]
    if not remote and sys.stdin.isatty():
        argv.append("-t")
    os.execvp("ssh", [*argv, host, *remote])
    return 255  # not reached: execvp replaces this process


def _status(*, as_json: bool) -> int:
    from hopthu.lab import lifecycle

    result = lifecycle.status()
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_status(result)
    return {"up": EXIT_OK, "absent": EXIT_ABSENT}.get(result["state"], EXIT_PARTIAL)


def _print_status(result: dict) -> None:
    bridge = result["bridge"]
    if bridge["present"]:
        print(f"bridge    {bridge['name']} {' '.join(bridge['addresses']) or 'no address'} "
              f"{'up' if bridge['up'] else 'DOWN'}, {len(bridge['ports'])} hosts attached")
    else:
        print(f"bridge    {bridge['name']}: absent")
    firewall = result["firewall"]
    print("firewall  " + {True: "nftables table inet hopthu_lab loaded",
                          False: "absent", None: "unknown (nft not installed)"}[firewall])
    proxy = result["proxy"]
    if proxy["running"]:
        print(f"proxy     {proxy['url']} pid {proxy['pid']}, "
              f"{'answers' if proxy['answers'] else 'DOES NOT ANSWER'}")
    else:
        print(f"proxy     {proxy['url']}: not running")
    print(f"\n{'host':<9} {'address':<14} {'suite':<9} {'running':<12} ssh")
    for name, host in result["hosts"].items():
        running = f"pid {host['pid']}" if host["running"] else ("no" if host["clone"]
                                                               else "no clone")
        ssh = {True: "ok", False: "FAILS", None: "-"}[host["ssh"]]
        print(f"{name:<9} {host['address']:<14} {host['suite'] or '-':<9} {running:<12} {ssh}")
    print()
    up_count = sum(1 for h in result["hosts"].values() if h["running"] and h["ssh"])
    print(f"lab: {result['state']} ({up_count}/{len(result['hosts'])} hosts up)")
    for problem in result["problems"]:
        print(f"  - {problem}")
    if result["state"] == "up":
        print(f"  ssh -F {result['ssh_config']} HOST   (or: hopthu lab ssh HOST)")
    elif result["state"] == "partial":
        print("  run `hopthu lab up` to complete it, or `hopthu lab down` to remove it")


def _summary(result: dict) -> None:
    hosts = result["hosts"]
    up_hosts = [name for name, h in hosts.items() if h["running"] and h["ssh"]]
    print(f"lab: {result['state']}: {len(up_hosts)}/{len(hosts)} hosts answer SSH "
          f"({', '.join(up_hosts) or 'none'}); proxy {result['proxy']['url']}; "
          f"ssh -F {result['ssh_config']} HOST")
