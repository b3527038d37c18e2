"""The `cx-<service>` command line shared by the FastAPI services: `serve` and `migrate`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cx_common.settings import ServiceSettings


def service_main(
    *,
    prog: str,
    description: str,
    app_factory: str,
    settings_factory: Callable[[], ServiceSettings],
    service_dir: Path,
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (default from settings)")
    serve.add_argument("--port", type=int, help="port (default from settings)")
    serve.add_argument("--workers", type=int, default=1)
    migrate = sub.add_parser("migrate", help="apply this service's database migrations")
    migrate.add_argument("--revision", default="head")
    args = parser.parse_args(argv)

    try:
        settings = settings_factory()
    except Exception as exc:  # pydantic ValidationError: one line naming the variable
        print(f"{prog}: invalid configuration: {_one_line(exc)}", file=sys.stderr)
        return 2

    if args.command == "migrate":
        if not settings.database_url:
            print(f"{prog}: no database URL (set CX_DATABASE_URL or the service's own variable)", file=sys.stderr)
            return 2
        from cx_common.migrations import upgrade

        upgrade(service_dir, settings.database_url, args.revision)
        return 0

    import uvicorn

    uvicorn.run(
        app_factory,
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]
