"""Synthetic labelled scenes for the demo, tests and benchmarks."""
