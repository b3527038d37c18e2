import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cx_ingest.codebooks.schemas import Language


class ClusterRunIn(BaseModel):
    window_days: int = Field(default=30, ge=1, le=365, description="Cluster unmatched items analysed this recently")
    max_items: int = Field(default=2000, ge=2, le=20_000)
    min_cluster_size: int = Field(default=0, ge=0, le=1000, description="0 = NLP default")
    max_clusters: int = Field(default=0, ge=0, le=500, description="0 = no limit")


class ClusterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rank: int
    size: int
    keywords: list[dict[str, Any]]
    representatives: list[dict[str, Any]]
    member_ids: list[str]
    promoted_codebook_id: uuid.UUID | None
    promoted_node_id: str | None


class ClusterRunRead(BaseModel):
    id: uuid.UUID
    trigger: str
    status: str
    item_count: int = Field(
        description="Items clustered; for a caller scoped to org units, those of its units among the clusters' members"
    )
    noise_count: int | None = Field(
        description="Items that fit no cluster; null for a caller scoped to org units (noise is not kept per item)"
    )
    window_days: int
    created_at: dt.datetime
    clusters: list[ClusterRead]


class PromoteIn(BaseModel):
    codebook_id: uuid.UUID
    parent_id: str | None = Field(default=None, description="Parent node in the draft; none = a new level-1 node")
    names: dict[Language, str] = Field(min_length=1)
    keywords: list[str] | None = Field(
        default=None, max_length=200, description="Defaults to the cluster's keywords"
    )  # the limits of NodeIn
