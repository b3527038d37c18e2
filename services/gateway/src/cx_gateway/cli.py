import argparse
import asyncio
import sys
from pathlib import Path

from cx_common.runner import service_main
from cx_gateway.settings import Settings, get_settings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "seed-demo":
        return seed_demo_command(args[1:])
    return service_main(
        prog="cx-gateway",
        description="CX gateway service (commands: serve, migrate, seed-demo)",
        app_factory="cx_gateway.main:create_app",
        settings_factory=get_settings,
        service_dir=SERVICE_DIR,
        argv=argv,
    )


def console_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/console"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}/console"


def seed_demo_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="cx-gateway seed-demo",
        description="Create the demo tenant (org tree HQ → regions → stores, one user per role). Idempotent.",
    )
    parser.parse_args(argv)
    try:
        settings = get_settings()
    except Exception as exc:
        print(f"cx-gateway: invalid configuration: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 2
    if not settings.database_url:
        print("cx-gateway: no database URL (set CX_GATEWAY_DATABASE_URL or CX_DATABASE_URL)", file=sys.stderr)
        return 2
    result = asyncio.run(_seed(settings))
    from cx_gateway.demo import DEMO_SLUG, DEMO_USERS, demo_password

    url = console_url(settings)
    print(f"demo tenant '{DEMO_SLUG}' {'created' if result.created else 'already present (nothing changed)'}")
    print(f"console: {url}")
    if result.created:
        print("demo logins (tenant: demo) — shown once:")
        for email, name, role, code, _ in DEMO_USERS:
            print(f"  {role:<8} {email:<24} {demo_password(role):<18} {code:<8} {name}")
    else:
        print("demo logins: <role>@demo.cx style accounts, see `cx-gateway seed-demo` output of the first run")
    return 0


async def _seed(settings: Settings):  # type: ignore[no-untyped-def]
    from cx_common.db import create_engine, session_factory
    from cx_gateway.demo import seed_demo
    from cx_gateway.identity.secrets import configure_hasher

    configure_hasher(
        time_cost=settings.password_time_cost,
        memory_cost_kib=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )
    assert settings.database_url
    engine = create_engine(settings.database_url, settings.db_schema, pool_size=2, max_overflow=0)
    try:
        async with session_factory(engine)() as session, session.begin():
            return await seed_demo(session, settings)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
