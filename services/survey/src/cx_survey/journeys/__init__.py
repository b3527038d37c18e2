"""Journey stages and touchpoints."""
