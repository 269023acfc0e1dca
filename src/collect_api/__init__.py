"""Collect: long-running data jobs that any client can pause, resume or terminate."""

__version__ = "0.1.0"
