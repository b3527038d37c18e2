"""Shared building blocks of the CX platform services."""

__version__ = "0.1.0"
