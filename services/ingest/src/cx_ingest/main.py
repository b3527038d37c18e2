"""App factory of the ingest service."""

import asyncio

from fastapi import FastAPI

from cx.nlp.v1 import nlp_pb2_grpc
from cx_common.app import Runtime, create_service_app
from cx_common.grpc import insecure_channel
from cx_common.logging import get_logger
from cx_ingest import pg
from cx_ingest.analysis.worker import AnalysisWorker
from cx_ingest.clusters.schedule import clustering_loop
from cx_ingest.clusters.views import router as clusters_router
from cx_ingest.codebooks import recode
from cx_ingest.codebooks.views import router as codebooks_router
from cx_ingest.feedback import files
from cx_ingest.feedback.batch_views import BATCH_PATHS
from cx_ingest.feedback.batch_views import router as batch_router
from cx_ingest.feedback.consumers import consumers
from cx_ingest.feedback.views import partner_router
from cx_ingest.feedback.views import router as feedback_router
from cx_ingest.maintenance import maintenance_loop
from cx_ingest.partners.ratelimit import RateLimiter
from cx_ingest.partners.views import router as partners_router
from cx_ingest.privacy.views import router as privacy_router
from cx_ingest.settings import Settings, get_settings

log = get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def start_worker(runtime: Runtime) -> None:
        if not settings.nlp_grpc_target:
            log.warning("nlp_disabled", reason="no NLP gRPC target (CX_NLP_GRPC_TARGET): no analysis, no clustering")
            return
        channel = insecure_channel(settings.nlp_grpc_target, default_timeout=settings.nlp_timeout_s)
        stub = nlp_pb2_grpc.NlpServiceStub(channel)
        runtime.extras["nlp_channel"] = channel
        runtime.extras["nlp_stub"] = stub
        if runtime.sessions is None:
            return
        if settings.clustering_interval_s > 0:
            runtime.extras["clustering_task"] = runtime.spawn(
                clustering_loop(runtime.sessions, stub, settings.clustering_interval_s), "clustering-schedule"
            )
        if not settings.analysis_enabled:
            return
        worker = AnalysisWorker(runtime.sessions, settings, stub, runtime.extras["analysis_wakeup"])
        runtime.extras["analysis_worker"] = worker
        runtime.spawn(worker.run(), "analysis-worker")

    async def open_pool(runtime: Runtime) -> None:
        if settings.database_url:
            runtime.extras[pg.POOL_KEY] = await pg.create_pool(
                settings.database_url, settings.db_schema, settings.fast_pool_size
            )

    async def resume_imports(runtime: Runtime) -> None:
        if runtime.sessions is None:
            return
        for import_id in await files.resumable_imports(runtime.sessions):
            log.info("file_import_resumed", import_id=str(import_id))
            runtime.spawn(
                files.process_import(runtime.sessions, import_id, settings.events_subject_prefix), f"import-{import_id}"
            )

    async def resume_recodes(runtime: Runtime) -> None:
        if runtime.sessions is None:
            return
        runtime.extras["maintenance_task"] = runtime.spawn(
            maintenance_loop(runtime.sessions, settings.idempotency_ttl_hours, 600.0), "maintenance"
        )
        for job_id in await recode.running_jobs(runtime.sessions):
            runtime.spawn(recode.run_job(runtime.sessions, job_id), f"recode-{job_id}")

    async def stop_worker(runtime: Runtime) -> None:
        worker = runtime.extras.get("analysis_worker")
        if worker is not None:
            worker.stop()
        for name in ("clustering_task", "maintenance_task"):
            task = runtime.extras.get(name)
            if task is not None:
                task.cancel()
        channel = runtime.extras.get("nlp_channel")
        if channel is not None:
            await channel.close(grace=1.0)

    async def close_pool(runtime: Runtime) -> None:
        pool = runtime.extras.pop(pg.POOL_KEY, None)
        if pool is not None:
            await pool.close()

    app = create_service_app(
        settings,
        title="CX ingest service",
        description=(
            "Partner CRM API, omni-channel feedback and O-data, PII redaction, codebooks, NLP analysis pipeline."
        ),
        routers=[
            batch_router,
            partner_router,
            partners_router,
            feedback_router,
            codebooks_router,
            clusters_router,
            privacy_router,
        ],
        consumers=consumers,
        on_startup=[open_pool, start_worker, resume_imports, resume_recodes],
        on_shutdown=[stop_worker, close_pool],
        text_guard_exempt=BATCH_PATHS,  # they reject only the records holding unstorable text (`parse_batch`)
    )
    app.state.runtime.extras["analysis_wakeup"] = asyncio.Event()
    app.state.rate_limiter = RateLimiter()
    return app
