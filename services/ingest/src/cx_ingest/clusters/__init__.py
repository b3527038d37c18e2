"""Clustering of feedback that matched no codebook node (via NLP Cluster); promote a cluster into a codebook node."""
