"""``flask --app webapp coins expire``: run it daily (cron or a systemd timer, see
docs/operations.md) in one or every region; running it twice, or in two regions at the
same moment, expires a wallet's coins once."""

from __future__ import annotations

import click
from flask.cli import AppGroup

coins_cli = AppGroup("coins", help="Coin expiry.")


@coins_cli.command("expire")
@click.option("--dry-run", is_flag=True, help="List the wallets that are due; change nothing.")
def expire_command(dry_run: bool) -> None:
    """Expire the coins of wallets without activity for COIN_EXPIRY_MONTHS months."""
    from webapp import clock
    from webapp.expiry import services

    period = services.months()
    if period <= 0:
        click.echo("coin expiry is off (LOYALTY_COIN_EXPIRY_MONTHS=0)")
        return
    now = clock.utcnow()
    if dry_run:
        due = services.due_wallets(now, period)
        for row in due:
            click.echo(f"wallet {row['id']}: {row['balance']} coins, last activity "
                       f"{row['last_activity']:%Y-%m-%d %H:%M} UTC")
        click.echo(f"{len(due)} wallets due ({sum(r['balance'] for r in due)} coins); "
                   "dry run, nothing changed")
        return
    summary = services.expire_due(now=now)
    click.echo(
        f"{summary.count(services.EXPIRED)} wallets expired "
        f"({summary.coins(services.EXPIRED)} coins); "
        f"{summary.count(services.ALREADY)} already expired by another run; "
        f"{summary.count(services.ACTIVE) + summary.count(services.EMPTY)} kept "
        f"(activity since, or empty); {len(summary.failed)} failed "
        f"(of {summary.candidates} due after {period} months)")
    for wallet_id, reason in summary.failed:
        click.echo(f"wallet {wallet_id}: {reason}", err=True)
    if summary.failed:
        raise SystemExit(1)  # a timer or cron shows the run failed; the next one catches up
