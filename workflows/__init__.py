"""Deterministic workflow code, one module per process; no I/O here."""
