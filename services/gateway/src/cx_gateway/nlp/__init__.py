"""NLP playground: analyse one text over gRPC (cx.nlp.v1.NlpService/Analyze)."""
