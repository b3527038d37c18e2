"""CX NLP service: models (cx_nlp.models), the BentoML HTTP service (cx_nlp.service) and its gRPC adapter
(cx_nlp.grpc_server)."""

__version__ = "0.1.0"
