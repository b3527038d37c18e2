"""Public API `/api/v1/<resource>` forwarded to the owning service over one pooled httpx client."""
