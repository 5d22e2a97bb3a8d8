"""Helpers for testing sladaemon against real notification endpoints."""
