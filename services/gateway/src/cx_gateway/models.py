"""Every table of the gateway schema, for Alembic (env.py imports `metadata` from here)."""

from cx_gateway.analytics import models as _analytics  # noqa: F401 - registers the tables
from cx_gateway.database import Base
from cx_gateway.identity import models as _identity  # noqa: F401
from cx_gateway.org import models as _org  # noqa: F401

metadata = Base.metadata
