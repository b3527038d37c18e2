"""NLP serving benchmark: our gRPC -> BentoML adaptive batching against its peers (see run.py)."""
