"""Org hierarchy: units as a tree of any depth (materialised path), subtree scoping."""
