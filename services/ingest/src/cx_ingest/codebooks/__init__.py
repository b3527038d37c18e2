"""Per-tenant, versioned 3-level aspect codebooks."""
