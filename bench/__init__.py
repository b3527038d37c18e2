"""Benchmarks of the CX platform, each run side by side with its peers (`python -m bench [NAME ...] [ARGS]`)."""
