"""Identity: tenants, users, memberships, roles -> scopes, login, refresh and API tokens, signing keys + JWKS."""
