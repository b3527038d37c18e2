"""Feedback items of every channel, O-data records, partner batch API, imports, idempotency."""
