"""CLI: ``flask --app webapp db upgrade``, ``demo seed``, ``staff create``, ``stores``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from webapp.config import REGIONS
from webapp.database.cli import cluster_cli
from webapp.extensions import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "db" / "migrations"

db_cli = AppGroup("db", help="Database schema.")
demo_cli = AppGroup("demo", help="Demo data (demo and test profiles only).")
staff_cli = AppGroup("staff", help="Café staff accounts.")
stores_cli = AppGroup("stores", help="Stores and their earn rates.")
accounts_cli = AppGroup("accounts", help="Customer accounts.")


def upgrade_schema(revision: str = "head") -> None:
    """Runs Alembic migrations on the app's database (or the cluster's writable member)."""
    # Imported here: Alembic is for the CLI and tests, and importing it cost every
    # gunicorn worker 0.2 s of CPU at each (re)start.
    from alembic import command
    from alembic.config import Config as AlembicConfig

    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as connection:
        alembic_config.attributes["connection"] = connection
        command.upgrade(alembic_config, revision)
    if db.separate_schema_owner:
        grant_app_privileges()


def grant_app_privileges() -> list[str]:
    """As the schema owner, give the app's account what it may do on each table (full DML,
    but only INSERT/SELECT on the append-only ones: webapp/database/privileges.py)."""
    from sqlalchemy import text

    from webapp.database.privileges import grant_app_privileges as grant

    account = db.read(
        lambda conn: conn.execute(text("SELECT CURRENT_USER()")).scalar(), name="schema.account"
    )
    with db.engine.begin() as connection:
        return grant(connection, account)


@db_cli.command("upgrade")
@click.option("--revision", default="head")
def upgrade_command(revision: str) -> None:
    upgrade_schema(revision)
    click.echo("schema up to date")


@demo_cli.command("seed")
def seed_command() -> None:
    from db.seed import seed_demo

    if not current_app.config["LOAD_DEMO_DATA"] and current_app.config["ENV_NAME"] != "test":
        raise click.ClickException("demo data loads only with LOYALTY_ENV=demo")
    click.echo(seed_demo())


@staff_cli.command("create")
@click.argument("email")
@click.option("--store", "store_code", required=True, help="Home store code, e.g. US-NYC-01")
@click.option("--name", default=None)
@click.password_option(prompt="Password for the new staff account")
def create_staff_command(email: str, store_code: str, name: str | None, password: str) -> None:
    from webapp.errors import AppError
    from webapp.staff import create_staff

    try:
        account = create_staff(email=email, store_code=store_code,
                               name=name or email.split("@")[0], password=password)
    except AppError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo(f"staff account {account['email']} at store {store_code} (id {account['id']})")


@stores_cli.command("list")
def list_stores_command() -> None:
    from webapp.ledger.queries import all_stores

    for store in db.read(all_stores, name="stores"):
        click.echo(f"{store['code']:<12} {store['region']} {store['currency']} "
                   f"{store['minor_per_coin']} minor units per coin  {store['name']}")


@stores_cli.command("create")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--region", type=click.Choice(REGIONS), required=True)
@click.option("--currency", required=True)
@click.option("--minor-per-coin", type=click.IntRange(min=1), required=True)
def create_store_command(code: str, name: str, region: str, currency: str,
                         minor_per_coin: int) -> None:
    from sqlalchemy.exc import IntegrityError

    from webapp.staff import create_store

    try:
        create_store(code=code, name=name, region=region, currency=currency.upper(),
                     minor_per_coin=minor_per_coin)
    except IntegrityError as error:
        raise click.ClickException(f"a store with code {code} already exists") from error
    click.echo(f"store {code} created")


@accounts_cli.command("cleanup")
def cleanup_command() -> None:
    """Deletes unverified accounts past LOYALTY_UNVERIFIED_ACCOUNT_DAYS, expired passkey
    challenges and old delivered mail. Run it daily (the mail worker's timer does)."""
    from webapp.account.services import cleanup

    done = cleanup()
    click.echo(f"deleted {done['accounts']} unverified accounts, {done['challenges']} "
               f"expired passkey challenges, {done['tokens']} expired tokens and links, "
               f"{done['mail']} delivered mails")


@accounts_cli.command("erase")
@click.argument("email")
@click.confirmation_option(prompt="Erase this account? Its coins are forfeited.")
def erase_command(email: str) -> None:
    """Erases an account on the owner's written request (the page needs their password)."""
    from webapp.account.services import erase_now
    from webapp.auth.emails import normalise_email
    from webapp.auth.queries import account_by_email

    address = normalise_email(email)
    account = db.read(lambda conn: account_by_email(conn, address), name="cli.account")
    if account is None or account["email"] != address:
        raise click.ClickException(f"no account with the address {email}")
    forfeited = erase_now(account["id"])
    click.echo(f"account {account['id']} erased; {forfeited} coins forfeited")


def _describe(error) -> str:
    fields = getattr(error, "errors", None)
    if fields:
        return "; ".join(message for messages in fields.values() for message in messages)
    return error.detail


def init_app(app: Flask) -> None:
    from webapp.mail.cli import mail_cli

    for group in (db_cli, demo_cli, staff_cli, stores_cli, cluster_cli, accounts_cli, mail_cli):
        app.cli.add_command(group)
