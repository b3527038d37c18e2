from cx_common.migrations import run_env
from cx_gateway.models import metadata
from cx_gateway.settings import SCHEMA, get_settings

run_env(metadata, SCHEMA, get_settings().database_url)
