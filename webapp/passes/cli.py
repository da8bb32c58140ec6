"""``flask --app webapp passes push-targets``: whom Apple's push service should wake."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from webapp.errors import AppError

from . import services

passes_cli = AppGroup("passes", help="Wallet passes.")


@passes_cli.command("push-targets")
@click.option("--since", "since_tag", default=None,
              help="The next_tag of the previous run (omit the first time).")
def push_targets_command(since_tag: str | None) -> None:
    """Prints JSON: the push tokens of phones whose pass changed, and the next tag."""
    try:
        targets = services.push_targets(since_tag)
    except AppError as error:
        raise click.ClickException(error.detail) from error
    click.echo(json.dumps({"push_tokens": targets.push_tokens, "next_tag": targets.next_tag}))
