from cx_alerts.models import metadata
from cx_alerts.settings import SCHEMA, get_settings
from cx_common.migrations import run_env

run_env(metadata, SCHEMA, get_settings().database_url)
