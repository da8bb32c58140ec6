"""Three regions on one machine: the production topology in network namespaces.

``netns`` builds the namespaces and veths, ``forwarder`` is the WAN (a user-space TCP
relay that delays each direction by half the RTT and can cut links), ``galera`` runs a
Galera node per region, ``front`` stands in for Route 53 + the load balancer, ``lab``
ties them together (``RegionLab``), ``checks`` measures and drills. See
docs/regions.md; ``make regions`` runs the checks, ``python -m labs.regions up`` the lab.
"""
