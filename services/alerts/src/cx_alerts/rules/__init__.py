"""AlertRule definitions."""
