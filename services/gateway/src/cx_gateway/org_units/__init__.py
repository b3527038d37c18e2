"""OrgUnit definitions."""
