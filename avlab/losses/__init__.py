"""Losses: pure functions, one module per idea (no I/O, no state)."""
