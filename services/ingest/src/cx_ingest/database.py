"""Declarative base of the ingest schema: every table of this service lives in its own schema."""

from sqlalchemy.orm import DeclarativeBase

from cx_common.db import schema_metadata
from cx_ingest.settings import SCHEMA


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)
