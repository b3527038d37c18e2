"""Every table of the ingest schema, for Alembic (env.py imports `metadata` from here)."""

from cx_ingest.database import Base
from cx_ingest.partners import models as _partners  # noqa: F401 - registers the tables

metadata = Base.metadata
