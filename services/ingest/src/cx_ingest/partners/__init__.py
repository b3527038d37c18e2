"""Partner definitions."""
