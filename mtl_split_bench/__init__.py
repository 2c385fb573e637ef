"""Benchmarks of mtl_split (`mtl-split bench NAME`): kept out of the product's packages.

Each prints a table and saves JSON + PNG under reports/bench/. They compare deployments side
by side in one run (machines are noisy; ratios measured together are what we report) and
start the real nodes the way `mtl-split launch` does, on a private DDS domain.
"""
