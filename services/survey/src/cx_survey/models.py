"""Every table of the survey schema, for Alembic (env.py imports `metadata` from here)."""

from cx_survey.database import Base
from cx_survey.surveys import models as _surveys  # noqa: F401 - registers the tables

metadata = Base.metadata
