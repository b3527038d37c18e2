from cx_common.migrations import run_env
from cx_survey.models import metadata
from cx_survey.settings import SCHEMA, get_settings

run_env(metadata, SCHEMA, get_settings().database_url)
