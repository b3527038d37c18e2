"""Local projection of the org tree (from org.unit.* events) for org-unit scoped reads."""
