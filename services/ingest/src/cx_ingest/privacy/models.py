import uuid
from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TimestampMixin
from cx_ingest.database import Base


class PrivacySettings(TimestampMixin, Base):
    """One row per tenant; absent row = defaults (built-in detectors on, raw text not kept)."""

    __tablename__ = "privacy_settings"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    keep_raw: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"name": "order_no", "pattern": "SO\\d{10}", "replacement": "[ORDER]"}]
    custom_patterns: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
