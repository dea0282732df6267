"""Helpers shared by the test suites: real small models built on the spot."""
