"""Who is where: the regions, their WAN round-trip times and the lab's addresses.

Every region ``r`` (index 1..3) gets:

* a network namespace ``<prefix>-<region>`` with a veth whose inner end is ``eth0``
  at ``<net>.<r>.2/24`` and whose host end ``<prefix>-<region>`` is ``<net>.<r>.1``;
* an *identity* address ``<net>.0.<r>``. It exists only on the hub (a dummy interface
  in the host namespace) where the delay forwarder listens on it; every namespace
  routes ``<net>.0.0/24`` through its veth to the hub. So "the ie node" is the same
  address from everywhere, Galera can gossip it, and every byte between two regions
  crosses the forwarder, which knows the link from the source address of the
  connection (``<net>.<s>.2``) and the identity it was sent to.

Namespaces have no default route and no route to each other's veth subnets, so the
forwarder is the only way between regions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.config import REGIONS

__all__ = ["REGIONS"]  # re-exported: the lab's regions are the product's

# Round-trip times between AWS us-east-1, eu-west-1 and ap-south-1 (docs/regions.md, "The WAN").
DEFAULT_RTT_MS: dict[frozenset[str], float] = {
    frozenset(("us", "ie")): 70.0,
    frozenset(("us", "in")): 190.0,
    frozenset(("ie", "in")): 120.0,
}

# Ports every node uses inside its namespace (namespaces do not share ports).
MYSQL_PORT = 3306
GCOMM_PORT = 4567
IST_PORT = 4568
SST_PORT = 4444
APP_PORT = 8000
NODE_PORTS: tuple[int, ...] = (MYSQL_PORT, GCOMM_PORT, IST_PORT, SST_PORT)


def parse_rtts(text: str | None) -> dict[frozenset[str], float]:
    """``"us-ie=70,us-in=190,ie-in=120"`` -> RTT table; missing pairs keep defaults."""
    rtts = dict(DEFAULT_RTT_MS)
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        pair, _, value = part.partition("=")
        a, _, b = pair.strip().partition("-")
        if a not in REGIONS or b not in REGIONS or a == b or not value:
            raise ValueError(f"bad RTT {part!r}: want e.g. us-ie=70 (regions {REGIONS})")
        rtts[frozenset((a, b))] = float(value)
    return rtts


def format_rtts(rtts: dict[frozenset[str], float]) -> str:
    pairs = []
    for i, a in enumerate(REGIONS):
        for b in REGIONS[i + 1 :]:
            pairs.append(f"{a}-{b}={rtts[frozenset((a, b))]:g}")
    return ",".join(pairs)


@dataclass(frozen=True)
class Topology:
    """Names and addresses of one lab; two labs need different prefixes and nets."""

    prefix: str = "lcr"
    net: str = "10.213"  # first two octets of a /16 the host does not use
    rtts: dict[frozenset[str], float] = field(default_factory=lambda: dict(DEFAULT_RTT_MS))

    def __post_init__(self) -> None:
        if len(self.prefix) > 8 or not self.prefix.replace("-", "").isalnum():
            raise ValueError("prefix: up to 8 letters/digits (interface names max 15 chars)")

    @property
    def regions(self) -> tuple[str, ...]:
        return REGIONS

    def index(self, region: str) -> int:
        return REGIONS.index(region) + 1

    def netns(self, region: str) -> str:
        return f"{self.prefix}-{region}"

    def host_if(self, region: str) -> str:
        return f"{self.prefix}-{region}"

    @property
    def hub_if(self) -> str:
        return f"{self.prefix}-hub"

    def identity(self, region: str) -> str:
        """The region's address as every other region (and Galera) knows it."""
        return f"{self.net}.0.{self.index(region)}"

    def host_ip(self, region: str) -> str:
        """Host (hub) end of the region's veth."""
        return f"{self.net}.{self.index(region)}.1"

    def ns_ip(self, region: str) -> str:
        """Namespace end of the region's veth: where the host reaches the region directly."""
        return f"{self.net}.{self.index(region)}.2"

    def region_of_ns_ip(self, ip: str) -> str | None:
        for region in REGIONS:
            if ip == self.ns_ip(region):
                return region
        return None

    def region_of_identity(self, ip: str) -> str | None:
        for region in REGIONS:
            if ip == self.identity(region):
                return region
        return None

    def rtt_ms(self, a: str, b: str) -> float:
        return 0.0 if a == b else self.rtts[frozenset((a, b))]

    def preference(self, region: str) -> list[str]:
        """The region first, then the others nearest first (how Route 53 would fail over)."""
        return sorted(REGIONS, key=lambda other: (self.rtt_ms(region, other), other != region))
