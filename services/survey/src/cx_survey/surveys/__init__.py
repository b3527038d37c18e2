"""Survey definitions."""
