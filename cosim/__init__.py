"""Cosimulation: scenario files, the model adapters, outcome records and the CLI."""
