"""Partner batch ingest (ours vs ORM add_all vs asyncpg executemany vs staged COPY vs raw COPY) and the analysis
pipeline against the NLP service's own ceiling."""
