"""Network namespaces and veths for the three regions (root only).

:func:`setup` builds what :mod:`labs.regions.topology` describes; :func:`teardown` removes
it all and kills whatever still runs inside the namespaces. Both are idempotent and
``setup`` starts with a ``teardown``, so a run that died half-way (even SIGKILLed)
is cleaned up by the next one or by ``python -m labs.regions down``.
"""


from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

from labs.regions.topology import REGIONS, Topology

APT_PACKAGES = ("iproute2", "ethtool")


class NetnsError(RuntimeError):
    pass


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run("ip", *args, check=check)


def in_ns(topology: Topology, region: str) -> list[str]:
    """Command prefix that runs a program inside the region's namespace."""
    return ["ip", "netns", "exec", topology.netns(region)]


def ensure_tools() -> None:
    """``ip`` and ``ethtool``; installed with apt when missing (root is needed anyway)."""
    if os.geteuid() != 0:
        raise NetnsError("the region lab needs root (ip netns, veth, mariadbd as mysql)")
    if shutil.which("ip") and shutil.which("ethtool"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600", *APT_PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        subprocess.run(cmd, env=env, capture_output=True, check=False)
    if not shutil.which("ip"):
        raise NetnsError("iproute2 is missing and could not be installed")


def existing_namespaces() -> set[str]:
    out = _ip("netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def ns_pids(topology: Topology, region: str) -> list[int]:
    out = _ip("netns", "pids", topology.netns(region), check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def kill_ns_processes(topology: Topology, timeout: float = 10.0) -> None:
    """SIGTERM everything in the lab's namespaces, SIGKILL what is left after ``timeout``."""
    present = existing_namespaces()
    regions = [r for r in REGIONS if topology.netns(r) in present]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        pids = [pid for r in regions for pid in ns_pids(topology, r)]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not any(ns_pids(topology, r) for r in regions):
                return
            time.sleep(0.1)


def teardown(topology: Topology) -> None:
    kill_ns_processes(topology)
    present = existing_namespaces()
    for region in REGIONS:
        if topology.netns(region) in present:
            _ip("netns", "del", topology.netns(region), check=False)
        # Deleting the namespace deletes the veth pair; this catches a half-made one.
        _ip("link", "del", topology.host_if(region), check=False)
    _ip("link", "del", topology.hub_if, check=False)


def _ethtool_off(iface: str, netns: str | None = None) -> None:
    if not shutil.which("ethtool"):
        return
    prefix = ["ip", "netns", "exec", netns] if netns else []
    for feature in ("tx", "tso", "gso", "gro"):
        # Some features cannot be changed on veth; the rest still apply.
        subprocess.run(
            [*prefix, "ethtool", "-K", iface, feature, "off"],
            capture_output=True,
            check=False,
        )


def setup(topology: Topology) -> None:
    """Hub with the identity addresses, one namespace + veth per region."""
    ensure_tools()
    teardown(topology)
    net = topology.net
    try:
        # The hub holds the identity addresses. This kernel has no ``dummy`` driver, so
        # the hub is one end of a veth pair whose other end stays unused in the host.
        _ip("link", "add", topology.hub_if, "type", "veth", "peer", "name", f"{topology.hub_if}-p")
        for region in REGIONS:
            _ip("addr", "add", f"{topology.identity(region)}/32", "dev", topology.hub_if)
        _ip("link", "set", f"{topology.hub_if}-p", "up")
        _ip("link", "set", topology.hub_if, "up")
        for region in REGIONS:
            ns, host_if = topology.netns(region), topology.host_if(region)
            inner = f"{topology.prefix}-{region}-n"
            _ip("netns", "add", ns)
            _ip("link", "add", host_if, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("-n", ns, "link", "set", inner, "name", "eth0")
            _ip("addr", "add", f"{topology.host_ip(region)}/24", "dev", host_if)
            _ip("link", "set", host_if, "up")
            _ip("-n", ns, "addr", "add", f"{topology.ns_ip(region)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
            # Only the identities are routed, and only through the hub: no shortcut.
            _ip(
                "-n", ns, "route", "add", f"{net}.0.0/24",
                "via", topology.host_ip(region), "src", topology.ns_ip(region),
            )  # fmt: skip
            _ethtool_off(host_if)
            _ethtool_off("eth0", ns)
    except BaseException:
        teardown(topology)
        raise


def check_isolated(topology: Topology) -> None:
    """Fail unless each namespace reaches the hub but not another region's veth directly."""
    for region in REGIONS:
        for other in REGIONS:
            if other == region:
                continue
            route = _run(
                *in_ns(topology, region), "ip", "route", "get", topology.ns_ip(other), check=False
            )
            if route.returncode == 0:
                raise NetnsError(f"{region} has a direct route to {other}: {route.stdout}")
