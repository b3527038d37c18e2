"""Every table of the alerts schema, for Alembic (env.py imports `metadata` from here)."""

from cx_alerts.database import Base
from cx_alerts.rules import models as _rules  # noqa: F401 - registers the tables

metadata = Base.metadata
