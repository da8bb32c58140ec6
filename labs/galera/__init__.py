"""The localhost three-node MariaDB Galera lab, in pieces a reader can take one at a time.

``config`` (ports, accounts, my.cnf), ``install`` (apt), ``node`` (one mariadbd),
``status`` (SHOW STATUS, waiting), ``recovery`` (after crashes), ``lab`` (the three
nodes together: :class:`GaleraLab`) and ``cli`` (``python -m labs.galera up``).
"""

from labs.galera.config import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    APP_DATABASE,
    APP_PASSWORD,
    APP_USER,
    DEFAULT_PORT_BASE,
    OWNER_PASSWORD,
    OWNER_USER,
    REGIONS,
)
from labs.galera.lab import GaleraLab
from labs.galera.status import SYNCED
from labs.proc import LabError

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USER",
    "APP_DATABASE",
    "APP_PASSWORD",
    "APP_USER",
    "DEFAULT_PORT_BASE",
    "OWNER_PASSWORD",
    "OWNER_USER",
    "REGIONS",
    "SYNCED",
    "GaleraLab",
    "LabError",
]
