"""Every table of the ingest schema, for Alembic (env.py imports `metadata` from here)."""

from cx_ingest.clusters import models as _clusters  # noqa: F401 - registers the tables
from cx_ingest.codebooks import models as _codebooks  # noqa: F401
from cx_ingest.database import Base
from cx_ingest.feedback import models as _feedback  # noqa: F401
from cx_ingest.orgs import models as _orgs  # noqa: F401
from cx_ingest.partners import models as _partners  # noqa: F401
from cx_ingest.privacy import models as _privacy  # noqa: F401

metadata = Base.metadata
