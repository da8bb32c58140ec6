"""``python -m labs.regions``: run the three-region lab by hand.

up      build everything, print the URLs, run until Ctrl-C/SIGTERM, tear down
down    remove what a crashed run left behind (namespaces, helpers, temp dir)
reap    wait for the lab's owner pid to die, then clean up after it (the lab starts this)
wan     talk to a running lab's forwarder: status | cut SRC DST | isolate R [DIR]
        | heal | rtt A B MS
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from db.seed import DEMO_PASSWORD
from labs.proc import LabError, wait_for_owner_to_die
from labs.regions.forwarder import ForwarderClient
from labs.regions.lab import RegionLab
from labs.regions.topology import REGIONS, Topology, parse_rtts


def _topology(args: argparse.Namespace) -> Topology:
    return Topology(prefix=args.prefix, net=args.net, rtts=parse_rtts(args.rtts))


def _cmd_up(args: argparse.Namespace) -> int:
    lab = RegionLab(_topology(args), front_port=args.front_port, keep=args.keep)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("starting the region lab (about a minute)...", file=sys.stderr, flush=True)
    lab.start()
    try:
        print(f"up in {lab.timings['start']:.0f}s, files in {lab.base_dir}")
        print(f"front router: {lab.front_url()} (header X-Client-Region), per region:")
        for region in REGIONS:
            print(f"  {region}: {lab.front_url(region)}   app direct {lab.app_url(region)}")
        print(f"forwarder control: python -m labs.regions wan --prefix {args.prefix} status")
        print(f"demo: demo@example.com / {DEMO_PASSWORD}; Ctrl-C to stop", flush=True)
        stop.wait()
    finally:
        print("tearing down...", file=sys.stderr, flush=True)
        lab.stop()
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    found = RegionLab.cleanup_stale(_topology(args), force=args.force)
    print("cleaned up" if found else "nothing to clean up")
    return 0


def _cmd_reap(args: argparse.Namespace) -> int:
    """The watcher a RegionLab starts in its own session: when the owner dies without
    ``stop()`` (SIGKILLed pytest, closed terminal) and the state file still names it,
    remove everything. A normal ``stop()`` terminates the watcher first."""
    topology = Topology(prefix=args.prefix)
    wait_for_owner_to_die(args.owner)
    if RegionLab.state_file(topology).read().get("owner") != args.owner:
        return 0  # stopped cleanly, or a new lab took over the prefix
    RegionLab.cleanup_stale(topology)
    print(f"reaped the region lab of dead pid {args.owner}", flush=True)
    return 0


def _cmd_wan(args: argparse.Namespace) -> int:
    base = RegionLab.state_file(Topology(prefix=args.prefix)).read().get("base_dir")
    if not base:
        print(f"no running lab with prefix {args.prefix!r}", file=sys.stderr)
        return 1
    wan = ForwarderClient(Path(base) / "forwarder.sock")
    op, rest = args.op, args.args
    if op == "cut":
        wan.cut(rest[0], rest[1])
    elif op == "isolate":
        wan.isolate(rest[0], rest[1] if len(rest) > 1 else "both")
    elif op == "heal":
        wan.heal()
    elif op == "rtt":
        wan.set_rtt(rest[0], rest[1], float(rest[2]))
    elif op != "status":
        print(f"unknown wan op {op}", file=sys.stderr)
        return 2
    print(json.dumps(wan.status(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labs.regions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("REGIONS_PREFIX") or "lcr",
        help="namespace/interface name prefix (env REGIONS_PREFIX)",
    )
    parser.add_argument(
        "--net",
        default=os.environ.get("REGIONS_NET") or "10.213",
        help="first two octets of the lab's /16 (env REGIONS_NET)",
    )
    parser.add_argument("--rtts", default=None, help="e.g. us-ie=70,us-in=190,ie-in=120")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("--front-port", type=int, default=None)
    up.add_argument("--keep", action="store_true", help="keep the lab directory")
    down = sub.add_parser("down")
    down.add_argument("--force", action="store_true", help="even if its owner still runs")
    reap = sub.add_parser("reap")
    reap.add_argument("--owner", type=int, required=True)
    wan = sub.add_parser("wan")
    wan.add_argument("op", choices=["status", "cut", "isolate", "heal", "rtt"])
    wan.add_argument("args", nargs="*")
    args = parser.parse_args(argv)
    try:
        commands = {"up": _cmd_up, "down": _cmd_down, "reap": _cmd_reap, "wan": _cmd_wan}
        return commands[args.command](args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
