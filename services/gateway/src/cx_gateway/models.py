"""Every table of the gateway schema, for Alembic (env.py imports `metadata` from here)."""

from cx_gateway.database import Base
from cx_gateway.org_units import models as _org_units  # noqa: F401 - registers the tables

metadata = Base.metadata
