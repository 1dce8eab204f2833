"""Seeded generators of example use-case data."""
