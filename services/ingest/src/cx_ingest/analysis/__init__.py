"""The analysis worker: pending feedback -> NLP Analyze -> stored results + feedback.analyzed."""
