import sys
from pathlib import Path

from cx_alerts.settings import get_settings
from cx_common.runner import service_main

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    return service_main(
        prog="cx-alerts",
        description="CX alerts service",
        app_factory="cx_alerts.main:create_app",
        settings_factory=get_settings,
        service_dir=SERVICE_DIR,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
