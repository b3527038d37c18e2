"""Model side of the NLP service: `load_pipeline` returns an object implementing `api.Pipeline`."""

from cx_nlp.models.api import load_pipeline

__all__ = ["load_pipeline"]
