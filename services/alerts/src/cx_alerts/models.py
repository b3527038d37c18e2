"""Every table of the alerts schema, for Alembic (env.py imports `metadata` from here)."""

from cx_alerts.alerts import models as _alerts  # noqa: F401 - registers the tables
from cx_alerts.audit import models as _audit  # noqa: F401
from cx_alerts.compliance import models as _compliance  # noqa: F401
from cx_alerts.database import Base
from cx_alerts.notifications import models as _notifications  # noqa: F401
from cx_alerts.org import models as _org  # noqa: F401
from cx_alerts.rules import models as _rules  # noqa: F401
from cx_alerts.signals import models as _signals  # noqa: F401
from cx_alerts.sla import models as _sla  # noqa: F401
from cx_alerts.tasks import models as _tasks  # noqa: F401
from cx_alerts.tickets import models as _tickets  # noqa: F401

metadata = Base.metadata
