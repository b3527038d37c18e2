"""Declarative base of the gateway schema: every table of this service lives in its own schema."""

from sqlalchemy.orm import DeclarativeBase

from cx_common.db import schema_metadata
from cx_gateway.settings import SCHEMA


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)
