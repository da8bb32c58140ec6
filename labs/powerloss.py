"""A simulated power loss of the whole Galera lab: what survives losing the page cache?

``kill -9`` (the fault drills) kills processes, not the machine: the OS page cache
survives, and with it every byte InnoDB wrote but never fsynced. So it cannot tell
``innodb_flush_log_at_trx_commit=1`` (fsync at every commit) from ``=2`` (write at
commit, fsync about once a second). This experiment can:

1. the three nodes' data directories live on an ext4 filesystem in a sparse file,
   attached as a loop device: the "disk" holds exactly what the filesystem wrote out;
2. earn traffic runs through the app (two apps, two threads each), every acknowledged
   idempotency key is recorded;
3. the power cut: every ``mariadbd`` is SIGKILLed and, at once, the backing file is
   copied -- the copy has what had reached the device, not what sat dirty in the page
   cache (the "lost" part of a power loss);
4. the original is unmounted, the copy mounted in its place, and the cluster recovered
   as after any whole-cluster crash (the most advanced node bootstraps);
5. acknowledged transactions missing from the recovered ledger are counted.

Needs root and loop devices; not part of ``make test``::

    sudo .venv/bin/python -m labs.powerloss --flush 1
    sudo .venv/bin/python -m labs.powerloss --flush 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from labs.galera import GaleraLab


class FlushLab(GaleraLab):
    """The lab with a chosen ``innodb_flush_log_at_trx_commit``."""

    def __init__(self, *args: Any, flush: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flush = flush

    def _config(self, node: Any) -> str:
        return super()._config(node).replace(
            "innodb_flush_log_at_trx_commit=1", f"innodb_flush_log_at_trx_commit={self.flush}"
        )


def run(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def attach(image: Path, mount: Path) -> str:
    device = run(["losetup", "--find", "--show", str(image)])
    mount.mkdir(parents=True, exist_ok=True)
    run(["mount", "-t", "ext4", device, str(mount)])
    mount.chmod(0o755)
    return device


def detach(device: str, mount: Path) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):
        run(["umount", str(mount)])
    with contextlib.suppress(subprocess.CalledProcessError):
        run(["losetup", "-d", device])


class Writers:
    """Idempotent earns on one card through each app; keys of the acknowledged ones."""

    def __init__(self, apps: dict[str, Any], card: str, threads: int) -> None:
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(app,), daemon=True)
            for app in apps.values()
            for _ in range(threads)
        ]
        self.card = card

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, app: Any) -> None:
        from webapp.ledger import services as ledger

        store = {"us": ("US-NYC-01", "USD"), "ie": ("IE-DUB-01", "EUR")}[app.config["REGION"]]
        while not self.stop.is_set():
            key = f"pl-{uuid.uuid4().hex}"
            with app.app_context():
                try:
                    ledger.earn(card=self.card, store_code=store[0], amount_minor=100,
                                currency=store[1], idempotency_key=key, staff_id=None)
                except Exception:  # the cut makes every request fail; that is the point
                    time.sleep(0.05)
                    continue
            self.acknowledged.append(key)


def experiment(flush: int, seconds: float, port_base: int, work: Path) -> dict[str, Any]:
    from db.seed import seed_stores
    from labs.stack import cluster_apps
    from webapp.auth.services import register
    from webapp.card.queries import active_cards
    from webapp.commands import upgrade_schema
    from webapp.extensions import db

    image, copy, mount = work / "disk.img", work / "after-power-loss.img", work / "mnt"
    with image.open("wb") as fh:
        fh.truncate(2 * 1024**3)
    run(["mkfs.ext4", "-q", "-F", str(image)])
    device = attach(image, mount)
    lab = FlushLab(base_dir=mount / "lab", port_base=port_base, keep=True, flush=flush)
    result: dict[str, Any] = {"innodb_flush_log_at_trx_commit": flush}
    try:
        lab.start()
        with cluster_apps(lab, ("us", "ie")) as apps:
            with apps["us"].app_context():
                upgrade_schema()
                seed_stores()
                account = register(name="Power Loss", email=f"pl-{uuid.uuid4().hex}@example.com",
                                   password="correct-horse-battery",  # noqa: S106 - lab
                                   region="us")
                card = db.read(lambda c: active_cards(c, account["id"])[0]["number"],
                               name="pl")
            writers = Writers(apps, card, threads=2)
            writers.start()
            time.sleep(seconds)
            # The cut: no process may write after this, and the copy is taken before the
            # kernel gets round to writing back what InnoDB left dirty.
            lab.kill_all()
            started = time.monotonic()
            # cp skips the sparse file's holes: seconds, not the half-minute a full
            # read takes (the kernel writes back dirty pages after 30 s on its own).
            run(["cp", "--sparse=always", str(image), str(copy)])
            result["copy_s"] = round(time.monotonic() - started, 2)
            writers.join()
        acknowledged = set(writers.acknowledged)
        detach(device, mount)
        device = attach(copy, mount)
        started = time.monotonic()
        lab.recover_all(timeout=300)
        result["recover_s"] = round(time.monotonic() - started, 1)
        with lab.admin_connect(0) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute(
                "SELECT idempotency_key FROM loyalty.ledger WHERE idempotency_key LIKE 'pl-%'"
            )
            present = {row[0] for row in cur.fetchall()}
        result.update(
            acknowledged=len(acknowledged),
            present_after_recovery=len(present & acknowledged),
            acknowledged_but_lost=len(acknowledged - present),
            applied_not_acknowledged=len(present - acknowledged),
        )
    finally:
        lab.stop(keep=False)
        detach(device, mount)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flush", type=int, choices=(1, 2), default=1)
    parser.add_argument("--seconds", type=float, default=5.0, help="load before the cut")
    parser.add_argument(
        "--port-base", type=int, default=int(os.environ.get("LAB_PORT_BASE") or 34080)
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (loop devices, mount)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="powerloss-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        result = experiment(args.flush, args.seconds, args.port_base, work)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
