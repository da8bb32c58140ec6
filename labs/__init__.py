"""Lab and measurement tooling: real clusters and app stacks for tests, drills and benchmarks.

Nothing here ships with the product. ``labs.galera`` runs a three-node MariaDB Galera
cluster on localhost (``python -m labs.galera up``), ``labs.regions`` the same cluster
in three network namespaces over a delayed WAN (``make regions``), ``labs.stack`` starts
one app per region on a cluster (in process or under gunicorn), ``labs.proc`` holds
the process and state-file helpers they share, and ``labs.ackloss`` is a MySQL-protocol
proxy that lets a COMMIT through and loses its answer (the unknown-outcome drills).
"""

from pathlib import Path

# The repository root: labs start the app (gunicorn, flask) from here.
ROOT = Path(__file__).resolve().parent.parent
