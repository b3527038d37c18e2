"""CX alerts service."""
