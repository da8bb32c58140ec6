"""``flask --app webapp mail send``: deliver the outbox (the tests call it too)."""

from __future__ import annotations

import time

import click
from flask.cli import AppGroup

mail_cli = AppGroup("mail", help="The mail outbox.")
CLEANUP_EVERY = 24 * 3600


@mail_cli.command("send")
@click.option("--watch", is_flag=True, help="Keep sending every --interval seconds.")
@click.option("--interval", default=5.0, show_default=True)
@click.option("--housekeeping", is_flag=True,
              help="With --watch: also run `accounts cleanup` once a day.")
def send_command(watch: bool, interval: float, housekeeping: bool) -> None:
    from webapp.errors import ServiceUnavailable

    from .sender import send_due

    last_cleanup = float("-inf")
    while True:
        if watch and housekeeping and time.monotonic() - last_cleanup > CLEANUP_EVERY:
            from webapp.account.services import cleanup

            try:
                click.echo(f"cleanup: {cleanup()}")
                last_cleanup = time.monotonic()
            except ServiceUnavailable as error:
                click.echo(f"cleanup postponed: {error.detail}", err=True)
        try:
            report = send_due()
        except ServiceUnavailable as error:  # the database, not the mail server
            if not watch:
                raise click.ClickException(error.detail) from error
            click.echo(f"database unavailable: {error.detail}", err=True)
        else:
            if report.sent or report.failed or not watch:
                click.echo(f"mail: {report.sent} sent, {report.failed} failed")
        if not watch:
            return
        time.sleep(interval)
