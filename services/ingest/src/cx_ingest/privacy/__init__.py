"""PII redaction and the tenant's privacy settings."""
