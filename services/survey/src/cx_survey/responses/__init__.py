"""Responses and personal invitation links."""
