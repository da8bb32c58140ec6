"""API v1 routes (being built)."""
