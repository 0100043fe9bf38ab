"""Simulated agencies: a country of them, driven through the same node client real agencies use."""
