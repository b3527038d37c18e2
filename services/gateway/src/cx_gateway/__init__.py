"""CX gateway service."""
