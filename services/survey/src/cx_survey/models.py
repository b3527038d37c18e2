"""Every table of the survey schema, for Alembic (env.py imports `metadata` from here)."""

from cx_survey.audit import models as _audit  # noqa: F401 - registers the tables
from cx_survey.database import Base
from cx_survey.distributions import models as _distributions  # noqa: F401
from cx_survey.followups import models as _followups  # noqa: F401
from cx_survey.journeys import models as _journeys  # noqa: F401
from cx_survey.orgs import models as _orgs  # noqa: F401
from cx_survey.responses import models as _responses  # noqa: F401
from cx_survey.surveys import models as _surveys  # noqa: F401

metadata = Base.metadata
