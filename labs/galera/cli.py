"""``python -m labs.galera up|check``: the localhost Galera lab by hand (``make lab``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence

from labs.galera.config import REGIONS
from labs.galera.lab import GaleraLab
from labs.proc import LabError


def _print_statuses(lab: GaleraLab) -> None:
    for i, region in enumerate(REGIONS):
        print(f"  node {i} {region:>2} :{lab.port(i)}  {lab.status(i)}")


def _cmd_up(args: argparse.Namespace) -> int:
    lab = GaleraLab(base_dir=args.dir, port_base=args.port_base, keep=args.keep)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    print(f"starting Galera lab in {args.dir or 'a temp dir'}...", file=sys.stderr)
    lab.start()
    try:
        print(f"started in {lab.timings['start']:.1f}s, dir {lab.base_dir}", file=sys.stderr)
        print(lab.members_env(), flush=True)
        print("Ctrl-C or SIGTERM to stop", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping Galera lab...", file=sys.stderr)
        lab.stop()
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    lab = GaleraLab(base_dir=args.dir, port_base=args.port_base, keep=args.keep)
    with lab:
        print(f"start: {lab.timings['start']:.1f}s")
        _print_statuses(lab)
        print(f"members: {lab.members_env()}")
        if args.faults:
            t0 = time.monotonic()
            lab.kill(1)
            lab.restart(1)
            print(f"kill(1)+restart(1): {time.monotonic() - t0:.1f}s via {lab.join_method(1)}")
            t0 = time.monotonic()
            lab.kill_all()
            lab.recover_all()
            print(f"kill_all+recover_all: {time.monotonic() - t0:.1f}s")
            _print_statuses(lab)
        t0 = time.monotonic()
    print(f"stop: {time.monotonic() - t0:.1f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labs.galera", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("up", "start the lab, print the members env line, run until Ctrl-C/SIGTERM"),
        ("check", "start the lab, print statuses and timings, stop"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("--port-base", type=int, default=None)
        cmd.add_argument("--dir", default=None, help="lab directory (default: a temp dir)")
        cmd.add_argument("--keep", action="store_true", help="keep the directory on stop")
        if name == "check":
            cmd.add_argument(
                "--faults", action="store_true", help="also time kill/restart and recover_all"
            )
    args = parser.parse_args(argv)
    try:
        return _cmd_up(args) if args.command == "up" else _cmd_check(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
