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
    from cx_gateway.demo_data import DemoPlan

    defaults = DemoPlan()
    parser = argparse.ArgumentParser(
        prog="cx-gateway seed-demo",
        description=(
            "Create the demo tenant (org tree HQ → regions → stores, one user per role) and load its sample data into "
            "survey, ingest and alerts through their APIs (CX_SURVEY_URL, CX_INGEST_URL, CX_ALERTS_URL). Idempotent: "
            "each part is loaded once."
        ),
    )
    parser.add_argument("--no-data", action="store_true", help="only the tenant, org tree and users")
    parser.add_argument("--responses", type=int, default=defaults.responses, help="survey responses to generate")
    parser.add_argument("--feedback", type=int, default=defaults.feedback, help="feedback items to generate")
    parser.add_argument("--customers", type=int, default=defaults.customers)
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every count above (cx-local passes CX_LOCAL_DEMO_SCALE)"
    )
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive (use --no-data for none)")
    try:
        settings = get_settings()
    except Exception as exc:
        print(f"cx-gateway: invalid configuration: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 2
    if not settings.database_url:
        print("cx-gateway: no database URL (set CX_GATEWAY_DATABASE_URL or CX_DATABASE_URL)", file=sys.stderr)
        return 2
    plan = None
    if not args.no_data:
        plan = DemoPlan(
            responses=max(1, round(args.responses * args.scale)),
            feedback=max(1, round(args.feedback * args.scale)),
            customers=max(1, round(args.customers * args.scale)),
            orders=max(1, round(args.orders * args.scale)),
        )
    from cx_gateway.demo_data import DemoLoadError

    try:
        result, data_note = asyncio.run(_seed(settings, plan))
    except DemoLoadError as exc:
        print(f"cx-gateway: loading demo data failed: {exc}", file=sys.stderr)
        return 1
    from cx_gateway.demo import DEMO_SLUG, DEMO_USERS, demo_password

    url = console_url(settings)
    print(f"demo tenant '{DEMO_SLUG}' {'created' if result.created else 'already present (nothing changed)'}")
    if data_note:
        print(data_note)
    print(f"console: {url}")
    if result.created:
        print("demo logins (tenant: demo) — shown once:")
        for email, name, role, code, _ in DEMO_USERS:
            print(f"  {role:<8} {email:<24} {demo_password(role):<18} {code:<8} {name}")
    else:
        print("demo logins: <role>@demo.cx style accounts, see `cx-gateway seed-demo` output of the first run")
    return 0


async def _reachable(urls: list[str]) -> list[str]:
    import httpx

    down = []
    async with httpx.AsyncClient(timeout=3.0) as client:
        for url in urls:
            try:
                r = await client.get(url.rstrip("/") + "/healthz")
                if r.status_code >= 500:
                    down.append(url)
            except httpx.HTTPError:
                down.append(url)
    return down


async def _seed(settings: Settings, plan: object | None):  # type: ignore[no-untyped-def]
    from cx_common.db import create_engine, session_factory
    from cx_gateway.demo import seed_demo
    from cx_gateway.demo_data import DemoPlan, Upstream, load_demo_data, text_progress
    from cx_gateway.identity.keys import KeyRing
    from cx_gateway.identity.secrets import configure_hasher

    configure_hasher(
        time_cost=settings.password_time_cost,
        memory_cost_kib=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )
    assert settings.database_url
    engine = create_engine(settings.database_url, settings.db_schema, pool_size=2, max_overflow=0)
    try:
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            result = await seed_demo(session, settings)
        if not isinstance(plan, DemoPlan):
            return result, ""
        upstream = Upstream(settings.survey_url, settings.ingest_url, settings.alerts_url)
        down = await _reachable([upstream.survey, upstream.ingest, upstream.alerts])
        if down:
            return result, f"sample data skipped: not reachable: {', '.join(down)} (run it again once they are up)"
        token = await demo_admin_token(KeyRing(sessions, settings), settings, result)
        print("loading demo sample data through the survey, ingest and alerts APIs…", file=sys.stderr)
        report = await load_demo_data(
            sessions, result.tenant_id, result.units, result.users, token, upstream, plan, text_progress()
        )
        parts = ", ".join(report.loaded) or "nothing new"
        return result, f"sample data loaded: {parts}" + (
            f" (already there: {', '.join(report.skipped)})" if report.skipped else ""
        )
    finally:
        await engine.dispose()


async def demo_admin_token(ring: object, settings: Settings, result: object, ttl_s: int = 3600) -> str:
    """A JWT of the demo admin (HQ), signed with the gateway's active key, for the seeding calls."""
    from cx_common.auth import Principal
    from cx_gateway.identity.keys import KeyRing
    from cx_gateway.identity.roles import scopes_for
    from cx_gateway.identity.service import mint_for_principal

    assert isinstance(ring, KeyRing)
    units, users = result.units, result.users  # type: ignore[attr-defined]
    principal = Principal(
        user_id=str(users["admin@demo.cx"]),
        tenant_id=result.tenant_id,  # type: ignore[attr-defined]
        role="admin",
        org_unit_id=str(units["HQ"]),
        scopes=frozenset(scopes_for("admin")),
    )
    return await mint_for_principal(principal, ring, settings, ttl_s=ttl_s)


if __name__ == "__main__":
    sys.exit(main())
