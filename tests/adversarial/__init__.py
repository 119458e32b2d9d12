"""Adversarial tests: fuzzed inputs, races, load, database faults and secret leaks."""
