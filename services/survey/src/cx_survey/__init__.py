"""CX survey service."""
