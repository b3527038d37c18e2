import uuid
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Depends, Query, status
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.app import RuntimeDep, SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import Problem, conflict, not_found
from cx_ingest.clusters import service
from cx_ingest.clusters.models import Cluster, ClusterRun
from cx_ingest.clusters.schemas import ClusterRead, ClusterRunIn, ClusterRunRead, PromoteIn
from cx_ingest.clusters.service import VisibleMembers
from cx_ingest.codebooks import service as codebooks
from cx_ingest.codebooks.schemas import CodebookRead, NodeIn
from cx_ingest.codebooks.views import tree_problem
from cx_ingest.orgs.service import visible_units

router = APIRouter(prefix="/v1/clusters", tags=["clusters"])

Reader = Annotated[Principal, Depends(require_scopes("clusters:read"))]
Writer = Annotated[Principal, Depends(require_scopes("clusters:write"))]


def run_read(
    run: ClusterRun, clusters: list[Cluster], visible: dict[uuid.UUID, VisibleMembers] | None = None
) -> ClusterRunRead:
    """The run as the caller may see it: `visible` (cluster id -> its visible members) for an org-scoped caller."""
    reads = [ClusterRead.model_validate(c) for c in clusters]
    item_count: int = run.item_count
    noise_count: int | None = run.noise_count
    if visible is not None:
        reads = [_scoped(read, visible.get(read.id, VisibleMembers())) for read in reads]
        reads = sorted((r for r in reads if r.size), key=lambda r: (-r.size, r.rank))
        reads = [r.model_copy(update={"rank": rank}) for rank, r in enumerate(reads)]
        item_count = sum(len(members.ids) for members in visible.values())
        noise_count = None
    return ClusterRunRead(
        id=run.id,
        trigger=run.trigger,
        status=run.status,
        item_count=item_count,
        noise_count=noise_count,
        window_days=run.window_days,
        created_at=run.created_at,
        clusters=reads,
    )


def _scoped(read: ClusterRead, members: VisibleMembers) -> ClusterRead:
    return read.model_copy(
        update={
            "size": len(members.ids),
            "member_ids": [m for m in read.member_ids if m in members.ids],
            "representatives": [r for r in read.representatives if str(r.get("id")) in members.ids],
            "keywords": members.keywords(read.keywords),
        }
    )


async def _visible(
    session: AsyncSession, principal: Principal, run_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[uuid.UUID, VisibleMembers]] | None:
    """None for a tenant-wide caller, else (run id -> cluster id -> member ids) what its org units let it see of
    these runs' clusters."""
    units = visible_units(principal)
    if units is None:
        return None
    return await service.visible_members(session, principal.tenant_id, run_ids, units)


def nlp_stub(runtime: Any) -> Any:
    stub = runtime.extras.get("nlp_stub")
    if stub is None:
        raise Problem(503, "the NLP service is not configured (CX_NLP_GRPC_TARGET)")
    return stub


@router.post("/runs", status_code=status.HTTP_201_CREATED, response_model=ClusterRunRead)
async def run_clustering(
    body: ClusterRunIn, session: SessionDep, runtime: RuntimeDep, principal: Writer
) -> ClusterRunRead:
    """Cluster recent feedback that matched no codebook node; clusters are ranked by size with representative texts.

    Org-unit scope (the rule of the feedback reads, `orgs.service.visible_units`): a run always clusters the whole
    tenant (like the scheduled runs), but a caller whose token names an org unit sees of each cluster only the
    members and representatives from its unit and the units below it, here and in `GET /runs`, `GET /runs/{id}`:
    `size` and `item_count` count what it can see, clusters with nothing it can see are left out (the others ranked
    again by what it can see), `noise_count` is null (noise is not kept per item), and of the cluster's keywords
    (NLP's summary over all its members) only those that occur in a text it can see are shown."""
    try:
        run, clusters = await service.run_clustering(
            session, nlp_stub(runtime), principal.tenant_id, body, actor=principal.user_id
        )
    except grpc.aio.AioRpcError as exc:
        raise Problem(503, f"NLP clustering unavailable: {exc.code().name}", headers={"Retry-After": "30"}) from exc
    await session.commit()
    await session.refresh(run)
    visible = await _visible(session, principal, [run.id])
    return run_read(run, clusters, None if visible is None else visible[run.id])


@router.get("/runs", response_model=list[ClusterRunRead])
async def list_runs(
    session: SessionDep, principal: Reader, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[ClusterRunRead]:
    """The latest runs, without their clusters; counts for an org-scoped caller as in `POST /runs`."""
    runs = await service.latest_runs(session, principal.tenant_id, limit)
    visible = await _visible(session, principal, [r.id for r in runs])
    return [run_read(r, [], None if visible is None else visible[r.id]) for r in runs]


@router.get("/runs/{run_id}", response_model=ClusterRunRead)
async def get_run(run_id: uuid.UUID, session: SessionDep, principal: Reader) -> ClusterRunRead:
    """A run with its ranked clusters; an org-scoped caller sees only its units' members (see `POST /runs`)."""
    found = await service.get_run(session, principal.tenant_id, run_id)
    if found is None:
        raise not_found("cluster run", run_id)
    visible = await _visible(session, principal, [run_id])
    return run_read(*found, None if visible is None else visible[run_id])


@router.post("/{cluster_id}:promote", response_model=CodebookRead)
async def promote(
    cluster_id: uuid.UUID,
    body: PromoteIn,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_scopes("clusters:write", "codebooks:write"))],
) -> CodebookRead:
    """Turn a cluster into a node of a codebook draft (keywords from the cluster, representatives as examples).

    A cluster is promoted once (409 on a second promote). The cluster and the codebook rows are locked for the
    change, so concurrent promotions into one codebook all land in its draft. An org-scoped caller (see
    `POST /runs`) can promote only a cluster with members in its units (else 404), and only representatives from
    its units become examples (and only keywords that occur in its units' texts)."""
    cluster = await service.get_cluster(session, principal.tenant_id, cluster_id, for_update=True)
    if cluster is None:
        raise not_found("cluster", cluster_id)
    representatives, keywords = cluster.representatives, cluster.keywords
    visible = await _visible(session, principal, [cluster.run_id])
    if visible is not None:
        members = visible[cluster.run_id].get(cluster.id)
        if members is None:
            raise not_found("cluster", cluster_id)
        representatives = [r for r in representatives if str(r.get("id")) in members.ids]
        keywords = members.keywords(keywords)
    if cluster.promoted_node_id is not None:
        raise conflict(
            f"cluster {cluster_id} was already promoted to node {cluster.promoted_node_id!r} of codebook "
            f"{cluster.promoted_codebook_id}",
            reason="already_promoted",
            codebook_id=str(cluster.promoted_codebook_id),
            node_id=cluster.promoted_node_id,
        )
    cb = await codebooks.get(session, principal.tenant_id, body.codebook_id, for_update=True)
    if cb is None:
        raise not_found("codebook", body.codebook_id)
    node_id = f"c-{uuid.uuid4().hex[:10]}"
    try:
        node = NodeIn(
            id=node_id,
            parent_id=body.parent_id,
            names=body.names,
            keywords=body.keywords if body.keywords is not None else [k["text"] for k in keywords],
            examples=[r["text"][:500] for r in representatives],
        )
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        raise Problem(422, f"{errors[0]['field']}: {errors[0]['message']}", errors=errors) from exc
    try:
        await codebooks.add_node(session, cb, node, principal.user_id)
    except codebooks.TreeError as exc:
        raise tree_problem(exc) from exc
    cluster.promoted_codebook_id = cb.id
    cluster.promoted_node_id = node_id
    await session.commit()
    await session.refresh(cb)
    return CodebookRead.model_validate(cb)
