import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, Uuid, cast, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from cx.nlp.v1 import nlp_pb2
from cx_common.db import utcnow
from cx_ingest.analysis.worker import analysis_text
from cx_ingest.clusters.models import Cluster, ClusterRun
from cx_ingest.clusters.schemas import ClusterRunIn
from cx_ingest.feedback.models import FeedbackItem


async def run_clustering(
    session: AsyncSession,
    stub: Any,
    tenant_id: uuid.UUID,
    params: ClusterRunIn,
    *,
    actor: str,
    trigger: str = "manual",
    rpc_deadline_s: float = 60.0,
) -> tuple[ClusterRun, list[Cluster]]:
    """Cluster the tenant's recent unmatched items with NLP Cluster and store the ranked clusters."""
    since = utcnow() - dt.timedelta(days=params.window_days)
    query = (
        select(FeedbackItem)
        .where(
            FeedbackItem.tenant_id == tenant_id,
            FeedbackItem.unmatched.is_(True),
            FeedbackItem.analyzed_at >= since,
        )
        .order_by(FeedbackItem.analyzed_at.desc())
        .limit(params.max_items)
    )
    items = list((await session.execute(query)).scalars())
    texts = {str(i.id): analysis_text({"title": i.title, "text": i.text, "turns": i.turns}) for i in items}
    run = ClusterRun(
        tenant_id=tenant_id,
        trigger=trigger,
        status="completed",
        item_count=len(items),
        window_days=params.window_days,
        requested_by=actor,
    )
    session.add(run)
    await session.flush()
    clusters: list[Cluster] = []
    if len(items) < 2:
        return run, clusters
    response = await stub.Cluster(
        nlp_pb2.ClusterRequest(
            items=[nlp_pb2.TextInput(id=k, text=v) for k, v in texts.items()],
            min_cluster_size=params.min_cluster_size,
            max_clusters=params.max_clusters,
            representatives_per_cluster=5,
        ),
        timeout=rpc_deadline_s,
    )
    run.noise_count = len(response.noise_ids)
    for rank, c in enumerate(sorted(response.clusters, key=lambda c: -c.size)):
        cluster = Cluster(
            tenant_id=tenant_id,
            run_id=run.id,
            rank=rank,
            size=c.size,
            keywords=[{"text": k.text, "weight": round(k.weight, 4)} for k in c.keywords],
            member_ids=list(c.member_ids),
            representatives=[
                {"id": rid, "text": text}
                for rid, text in zip(c.representative_ids, c.representative_texts, strict=False)
            ],
        )
        session.add(cluster)
        clusters.append(cluster)
    await session.flush()
    return run, clusters


async def get_run(
    session: AsyncSession, tenant_id: uuid.UUID, run_id: uuid.UUID
) -> tuple[ClusterRun, list[Cluster]] | None:
    run = (
        await session.execute(select(ClusterRun).where(ClusterRun.tenant_id == tenant_id, ClusterRun.id == run_id))
    ).scalar_one_or_none()
    if run is None:
        return None
    clusters = (
        await session.execute(
            select(Cluster).where(Cluster.tenant_id == tenant_id, Cluster.run_id == run_id).order_by(Cluster.rank)
        )
    ).scalars()
    return run, list(clusters)


async def latest_runs(session: AsyncSession, tenant_id: uuid.UUID, limit: int) -> list[ClusterRun]:
    query = select(ClusterRun).where(ClusterRun.tenant_id == tenant_id).order_by(ClusterRun.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def get_cluster(
    session: AsyncSession, tenant_id: uuid.UUID, cluster_id: uuid.UUID, *, for_update: bool = False
) -> Cluster | None:
    query = select(Cluster).where(Cluster.tenant_id == tenant_id, Cluster.id == cluster_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


@dataclass
class VisibleMembers:
    """What an org-scoped caller may see of one cluster: its member ids there, and their texts (lower-cased), which
    a keyword must appear in to be shown (the cluster's keywords summarise every member)."""

    ids: set[str] = field(default_factory=set)
    texts: list[str] = field(default_factory=list)

    def keywords(self, keywords: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [k for k in keywords if any(str(k.get("text", "")).lower() in t for t in self.texts)]


async def visible_members(
    session: AsyncSession, tenant_id: uuid.UUID, run_ids: list[uuid.UUID], units: Select[Any]
) -> dict[uuid.UUID, dict[uuid.UUID, VisibleMembers]]:
    """Run id -> cluster id -> the members (feedback items) of those runs' clusters that lie in `units`
    (`orgs.service.visible_units`, the same rule as the feedback reads). Clusters with none are absent."""
    if not run_ids:
        return {}
    member = func.jsonb_array_elements_text(Cluster.member_ids).table_valued("value").lateral("member")
    query = (
        select(Cluster.run_id, Cluster.id, member.c.value, FeedbackItem.text)
        .select_from(Cluster)
        .join(member, true())
        .join(
            FeedbackItem,
            (FeedbackItem.tenant_id == Cluster.tenant_id) & (FeedbackItem.id == cast(member.c.value, Uuid)),
        )
        .where(Cluster.tenant_id == tenant_id, Cluster.run_id.in_(run_ids), FeedbackItem.org_unit_id.in_(units))
    )
    out: dict[uuid.UUID, dict[uuid.UUID, VisibleMembers]] = {run_id: {} for run_id in run_ids}
    for run_id, cluster_id, member_id, text in (await session.execute(query)).all():
        seen = out[run_id].setdefault(cluster_id, VisibleMembers())
        seen.ids.add(str(member_id))
        seen.texts.append((text or "").lower())
    return out
