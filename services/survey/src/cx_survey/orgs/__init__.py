"""Local projection of the org tree."""
