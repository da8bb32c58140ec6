"""Cleans up after a region lab whose owner died without tearing it down.

:class:`regions.lab.RegionLab` starts one reaper per lab, in its own session so it
outlives a SIGKILLed owner (pytest killed by CI, a closed terminal). It waits for the
owner's pid to go away; if the lab's state file still names that owner, it removes
everything (:meth:`RegionLab.cleanup_stale`). A normal ``stop()`` ends the reaper.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from regions.topology import Topology


def pid_alive(pid: int) -> bool:
    """Whether the pid exists (also for regions.lab: is a lab's recorded owner still there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regions.reaper")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--state", required=True)
    args = parser.parse_args(argv)
    while pid_alive(args.owner):
        time.sleep(1.0)
    state = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(Path(args.state).read_text())
    if state.get("owner") != args.owner:
        return 0  # stopped cleanly, or a new lab took over the prefix
    from regions.lab import RegionLab

    RegionLab.cleanup_stale(Topology(prefix=args.prefix))
    print(f"reaped the region lab of dead pid {args.owner}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
