import uuid
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Query, status

from cx_common.app import RuntimeDep, SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import Problem, not_found
from cx_ingest.clusters import service
from cx_ingest.clusters.models import Cluster, ClusterRun
from cx_ingest.clusters.schemas import ClusterRead, ClusterRunIn, ClusterRunRead, PromoteIn
from cx_ingest.codebooks import service as codebooks
from cx_ingest.codebooks.schemas import CodebookRead, NodeIn
from cx_ingest.codebooks.views import tree_problem

router = APIRouter(prefix="/v1/clusters", tags=["clusters"])

Reader = Annotated[Principal, Depends(require_scopes("clusters:read"))]
Writer = Annotated[Principal, Depends(require_scopes("clusters:write"))]


def run_read(run: ClusterRun, clusters: list[Cluster]) -> ClusterRunRead:
    return ClusterRunRead(
        id=run.id,
        trigger=run.trigger,
        status=run.status,
        item_count=run.item_count,
        noise_count=run.noise_count,
        window_days=run.window_days,
        created_at=run.created_at,
        clusters=[ClusterRead.model_validate(c) for c in clusters],
    )


def nlp_stub(runtime: Any) -> Any:
    stub = runtime.extras.get("nlp_stub")
    if stub is None:
        raise Problem(503, "the NLP service is not configured (CX_NLP_GRPC_TARGET)")
    return stub


@router.post("/runs", status_code=status.HTTP_201_CREATED, response_model=ClusterRunRead)
async def run_clustering(
    body: ClusterRunIn, session: SessionDep, runtime: RuntimeDep, principal: Writer
) -> ClusterRunRead:
    """Cluster recent feedback that matched no codebook node; clusters are ranked by size with representative texts."""
    try:
        run, clusters = await service.run_clustering(
            session, nlp_stub(runtime), principal.tenant_id, body, actor=principal.user_id
        )
    except grpc.aio.AioRpcError as exc:
        raise Problem(503, f"NLP clustering unavailable: {exc.code().name}", headers={"Retry-After": "30"}) from exc
    await session.commit()
    await session.refresh(run)
    return run_read(run, clusters)


@router.get("/runs", response_model=list[ClusterRunRead])
async def list_runs(
    session: SessionDep, principal: Reader, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[ClusterRunRead]:
    runs = await service.latest_runs(session, principal.tenant_id, limit)
    return [run_read(r, []) for r in runs]


@router.get("/runs/{run_id}", response_model=ClusterRunRead)
async def get_run(run_id: uuid.UUID, session: SessionDep, principal: Reader) -> ClusterRunRead:
    found = await service.get_run(session, principal.tenant_id, run_id)
    if found is None:
        raise not_found("cluster run", run_id)
    return run_read(*found)


@router.post("/{cluster_id}:promote", response_model=CodebookRead)
async def promote(
    cluster_id: uuid.UUID,
    body: PromoteIn,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_scopes("clusters:write", "codebooks:write"))],
) -> CodebookRead:
    """Turn a cluster into a node of a codebook draft (keywords from the cluster, representatives as examples)."""
    cluster = await service.get_cluster(session, principal.tenant_id, cluster_id)
    if cluster is None:
        raise not_found("cluster", cluster_id)
    cb = await codebooks.get(session, principal.tenant_id, body.codebook_id)
    if cb is None:
        raise not_found("codebook", body.codebook_id)
    node_id = f"c-{uuid.uuid4().hex[:10]}"
    node = NodeIn(
        id=node_id,
        parent_id=body.parent_id,
        names=body.names,
        keywords=body.keywords if body.keywords is not None else [k["text"] for k in cluster.keywords],
        examples=[r["text"][:500] for r in cluster.representatives],
    )
    try:
        await codebooks.add_node(session, cb, node, principal.user_id)
    except codebooks.TreeError as exc:
        raise tree_problem(exc) from exc
    cluster.promoted_codebook_id = cb.id
    cluster.promoted_node_id = node_id
    await session.commit()
    await session.refresh(cb)
    return CodebookRead.model_validate(cb)
