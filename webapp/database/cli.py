"""``flask --app webapp cluster status``: what every database member looks like from here.

Probes each member afresh (not the cached background state), prints region, state,
role, replication queue (Galera ``wsrep_local_recv_queue``, GR
``COUNT_TRANSACTIONS_IN_QUEUE``) and the probe's latency. Exits 1 when no member takes
writes, so scripts and deploy checks can use it.
"""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from webapp.extensions import db

cluster_cli = AppGroup("cluster", help="Database cluster members and their health.")

_COLUMNS = (
    ("name", "MEMBER", 8),
    ("region", "REGION", 6),
    ("state", "STATE", 11),
    ("role", "ROLE", 14),
    ("queue", "QUEUE", 5),
    ("latency_ms", "LATENCY", 9),
    ("address", "ADDRESS", 21),
)


@cluster_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON.")
def status_command(as_json: bool) -> None:
    router = db.router
    cluster = getattr(router, "cluster", None)
    if cluster is not None:
        cluster.probe_all()
    members = db.status()
    writable = [m for m in members if m["state"] == "up" and m.get("role") != "read-only"]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "region": current_app.config["REGION"],
                    "kind": getattr(cluster, "kind", None) or "single",
                    "writable": bool(writable),
                    "members": members,
                },
                indent=2,
                default=str,
            )
        )
    else:
        kind = getattr(cluster, "kind", None) or "single database"
        order = " > ".join(getattr(cluster, "region_order", [])) or "-"
        click.echo(
            f"cluster: {kind}   app region: {current_app.config['REGION']}   preference: {order}"
        )
        click.echo("  ".join(title.ljust(width) for _, title, width in _COLUMNS) + "  ERROR")
        for member in members:
            cells = []
            for key, _, width in _COLUMNS:
                value = member.get(key)
                if key == "latency_ms":
                    value = "-" if value is None else f"{value:.1f} ms"
                cells.append(("-" if value is None else str(value)).ljust(width))
            line = "  ".join(cells) + "  " + (member.get("error") or "")
            color = (
                "green"
                if member["state"] == "up"
                else ("red" if member["state"] in ("down", "non_primary") else "yellow")
            )
            click.secho(line.rstrip(), fg=color)
        if not writable:
            click.secho("no member accepts writes", fg="red", err=True)
    if not writable:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    app.cli.add_command(cluster_cli)
