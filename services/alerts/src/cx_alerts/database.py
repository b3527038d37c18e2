"""Declarative base of the alerts schema: every table of this service lives in its own schema."""

from sqlalchemy.orm import DeclarativeBase

from cx_alerts.settings import SCHEMA
from cx_common.db import schema_metadata


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)
