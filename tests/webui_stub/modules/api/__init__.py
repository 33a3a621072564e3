"""Stand-in for modules/api (v1.10.1)."""
