"""MariaDB + Galera from apt when they are missing.

The project's own files must install what they need (a fresh machine or CI has
nothing installed by hand), so the lab installs its server rather than assuming one.
"""

from __future__ import annotations

import os
import subprocess

from labs.galera.config import GALERA_PROVIDER
from labs.proc import LabError, find_binary

APT_PACKAGES = ("mariadb-server", "galera-4", "rsync", "mariadb-backup", "socat")


def _missing_tools() -> list[str]:
    missing = [
        name
        for name in ("mariadbd", "mariadb-install-db", "mariadb", "rsync")
        if find_binary(name) is None
    ]
    if not GALERA_PROVIDER.exists():
        missing.append(str(GALERA_PROVIDER))
    return missing


def ensure_installed() -> None:
    """Install MariaDB + Galera with apt when missing.

    The project's own files must install what they need (a fresh machine or CI has
    nothing installed by hand), so the lab installs its server rather than assuming one.
    """
    if not _missing_tools():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-o",
        "DPkg::Lock::Timeout=600",
        *APT_PACKAGES,
    ]
    result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # A fresh machine may have no package lists yet: refresh once and retry.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    missing = _missing_tools()
    if result.returncode != 0 or missing:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise LabError(
            f"could not install MariaDB Galera ({' '.join(install)} exited "
            f"{result.returncode}; still missing: {missing or 'nothing'}):\n{tail}"
        )
