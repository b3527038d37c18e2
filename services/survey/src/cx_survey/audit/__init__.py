"""Append-only audit trail of changes to surveys and distributions."""
