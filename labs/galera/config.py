"""What a Galera node is told: ports, accounts and its my.cnf.

Both labs (localhost here, network namespaces in ``labs.regions``) render their nodes'
config and accounts from this one module, so they cannot drift apart; only addresses
differ between them.

Ports: a localhost lab with port base ``B`` uses the 12 ports ``B .. B+11``: client
ports ``B+i``, Galera group communication ``B+3+i``, IST ``B+6+i`` and rsync SST
``B+9+i`` for node ``i``. Two labs coexist when their bases are 12 or more apart.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from webapp.config import REGIONS

if TYPE_CHECKING:
    from labs.galera.node import GaleraNode

__all__ = ["REGIONS"]  # re-exported: the lab's nodes are the product's regions

DEFAULT_PORT_BASE = 33061
PORTS_PER_LAB = 12
GALERA_PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")

APP_DATABASE = "loyalty"
APP_USER = "loyalty"
APP_PASSWORD = "loyalty-lab"  # noqa: S105 - a throwaway lab bound to 127.0.0.1
ADMIN_USER = "lab_admin"
ADMIN_PASSWORD = "lab-admin"  # noqa: S105 - a throwaway lab bound to 127.0.0.1
# Owns the app's schema: migrations, triggers, the app's table grants, test resets.
OWNER_USER = "loyalty_owner"
OWNER_PASSWORD = "loyalty-owner-lab"  # noqa: S105 - a throwaway lab bound to 127.0.0.1
# Who a lab URL connects as: the app, the schema owner, the lab's all-privileges admin.
ACCOUNTS = {
    "app": (APP_USER, APP_PASSWORD),
    "owner": (OWNER_USER, OWNER_PASSWORD),
    "admin": (ADMIN_USER, ADMIN_PASSWORD),
}


def node_url(host: str, port: int, account: str = "app") -> str:
    """SQLAlchemy URL of the app's database on a lab node, as ``account`` (ACCOUNTS)."""
    user, password = ACCOUNTS[account]
    return f"mysql+pymysql://{user}:{password}@{host}:{port}/{APP_DATABASE}"


@dataclass(frozen=True)
class Tuning:
    """What a lab sets once for all its nodes: how fast Galera declares a member gone
    (``evs.*`` provider options) and the memory it gives the write-set cache and InnoDB."""

    evs: Mapping[str, str]
    gcache_size: str
    buffer_pool_size: str


def render_config(
    node: GaleraNode,
    *,
    user: str,
    port: int,
    bind_address: str,
    cluster_name: str,
    peers: Sequence[str],
    node_address: str,
    sst_port: int,
    network_options: Sequence[str],
    tuning: Tuning,
) -> str:
    """The node's my.cnf. Only addresses differ between the labs; ``network_options`` are
    the Galera provider options about them (gmcast/ist listen and advertise addresses)."""
    provider_options = ";".join(
        [
            *network_options,
            f"gcache.size={tuning.gcache_size}",
            *(f"evs.{key}={value}" for key, value in tuning.evs.items()),
        ]
    )
    lines = [
        "[mariadbd]",
        f"user={user}",
        f"datadir={node.datadir}",
        f"socket={node.socket}",
        f"pid-file={node.home / 'mariadbd.pid'}",
        f"log-error={node.error_log}",
        # A private tmpdir: parallel install-db runs collided on temp tables in /tmp.
        f"tmpdir={node.home / 'tmp'}",
        f"port={port}",
        f"bind-address={bind_address}",
        "skip-name-resolve",
        "max_connections=300",
        f"innodb_buffer_pool_size={tuning.buffer_pool_size}",
        "innodb_log_file_size=32M",
        # Jepsen lost committed writes with 0/2; the ledger needs durable commits.
        "innodb_flush_log_at_trx_commit=1",
        "innodb_autoinc_lock_mode=2",
        "binlog_format=ROW",
        # The schema owner creates the append-only triggers without SUPER; safe with row-
        # based replication only (wsrep counts as a binary log), as in deploy/mysql/gr.cnf.
        "log_bin_trust_function_creators=ON",
        "default_storage_engine=InnoDB",
        "character_set_server=utf8mb4",
        "collation_server=utf8mb4_unicode_ci",
        "wsrep_on=ON",
        f"wsrep_provider={GALERA_PROVIDER}",
        f"wsrep_cluster_name={cluster_name}",
        f"wsrep_cluster_address=gcomm://{','.join(peers)}",
        f"wsrep_node_name={node.region}",
        f"wsrep_node_address={node_address}",
        f"wsrep_node_incoming_address={node_address}:{port}",
        f'wsrep_provider_options="{provider_options}"',
        "wsrep_sst_method=rsync",
        f"wsrep_sst_receive_address={node_address}:{sst_port}",
        "",
    ]
    return "\n".join(lines)


def chown_tree(root: Path, user: str) -> None:
    """Hand the lab dir to the server's user (mariadbd runs as it when we are root)."""
    for path in [root, *root.rglob("*")]:
        shutil.chown(path, user, user)
    root.chmod(0o750)


def account_statements(admin_hosts: Sequence[str], app_hosts: Sequence[str]) -> list[str]:
    """SQL for the lab's all-privileges admin, the app database, its owner and the app's
    user, as production has them (deploy/mysql/init-gr.sql): the app may read and insert
    anywhere; ``flask db upgrade`` (as the owner) grants it UPDATE/DELETE on every table
    but the append-only ones."""
    admin = f"IDENTIFIED BY '{ADMIN_PASSWORD}'"
    app = f"IDENTIFIED BY '{APP_PASSWORD}'"
    owner = f"IDENTIFIED BY '{OWNER_PASSWORD}'"
    return [
        *(f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'{host}' {admin}" for host in admin_hosts),
        *(
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'{host}' WITH GRANT OPTION"
            for host in admin_hosts
        ),
        f"CREATE DATABASE IF NOT EXISTS {APP_DATABASE} "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        *(f"CREATE USER IF NOT EXISTS '{OWNER_USER}'@'{host}' {owner}" for host in app_hosts),
        *(
            f"GRANT ALL PRIVILEGES ON {APP_DATABASE}.* TO '{OWNER_USER}'@'{host}' "
            "WITH GRANT OPTION"
            for host in app_hosts
        ),
        *(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'{host}' {app}" for host in app_hosts),
        *(
            f"GRANT SELECT, INSERT ON {APP_DATABASE}.* TO '{APP_USER}'@'{host}'"
            for host in app_hosts
        ),
    ]
