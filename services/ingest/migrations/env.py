from cx_common.migrations import run_env
from cx_ingest.models import metadata
from cx_ingest.settings import SCHEMA, get_settings

run_env(metadata, SCHEMA, get_settings().database_url)
