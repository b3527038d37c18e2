"""CX ingest service."""
