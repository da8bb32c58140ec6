"""Coins expire after months without activity on the wallet (``flask coins expire``)."""
