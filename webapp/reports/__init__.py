"""Programme reports: coins issued, redeemed, reversed, adjusted and expired per region,
store and period; outstanding coins (the liability); active wallets. SQL lives in
:mod:`.queries`, the charts in :mod:`.charts`; who may see what is decided by the
rulebook in :mod:`webapp.staff.reports`."""
