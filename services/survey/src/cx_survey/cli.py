import sys
from pathlib import Path

from cx_common.runner import service_main
from cx_survey.settings import get_settings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    return service_main(
        prog="cx-survey",
        description="CX survey service",
        app_factory="cx_survey.main:create_app",
        settings_factory=get_settings,
        service_dir=SERVICE_DIR,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
