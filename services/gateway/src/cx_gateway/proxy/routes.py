"""Which service owns which public resource, and the scope domain guarding it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Upstream = Literal["survey", "ingest", "alerts"]


@dataclass(frozen=True)
class Route:
    resource: str  # public path segment under /api/v1
    upstream: Upstream
    upstream_prefix: str  # path on the owning service
    domain: str  # scope domain: GET/HEAD need `<domain>:read`, everything else `<domain>:write`
    summary: str


ROUTES: tuple[Route, ...] = (
    Route("surveys", "survey", "/v1/surveys", "surveys", "Surveys, versions, questions, results"),
    Route("responses", "survey", "/v1/responses", "responses", "Survey responses"),
    Route("journey-stages", "survey", "/v1/journey-stages", "surveys", "Customer journey stages"),
    Route("touchpoints", "survey", "/v1/touchpoints", "surveys", "Touchpoints"),
    Route("distributions", "survey", "/v1/distributions", "surveys", "Survey distributions"),
    Route("feedback", "ingest", "/v1/feedback", "feedback", "Feedback items and their analysis"),
    Route("codebooks", "ingest", "/v1/codebooks", "codebooks", "Codebooks (3-level aspect trees)"),
    Route("clusters", "ingest", "/v1/clusters", "feedback", "Feedback clusters"),
    Route("partners", "ingest", "/v1/partners", "partners", "Partner connectors and API keys"),
    Route("odata", "ingest", "/v1/odata", "odata", "Operational data records"),
    Route("privacy", "ingest", "/v1/privacy", "privacy", "Personal data requests"),
    Route("rules", "alerts", "/v1/rules", "rules", "Alert rules"),
    Route("alerts", "alerts", "/v1/alerts", "alerts", "Alerts"),
    Route("tickets", "alerts", "/v1/tickets", "tickets", "Tickets (close the loop)"),
    Route("tasks", "alerts", "/v1/tasks", "tasks", "Improvement tasks"),
    Route("sla-policies", "alerts", "/v1/sla-policies", "sla", "SLA policies"),
    Route("calendars", "alerts", "/v1/calendars", "sla", "Business calendars"),
    Route("notifications", "alerts", "/v1/notifications", "tickets", "Notifications"),
    Route("audit", "alerts", "/v1/audit", "audit", "Audit trail"),
)


def required_scope(route: Route, method: str) -> str:
    return f"{route.domain}:{'read' if method in ('GET', 'HEAD') else 'write'}"
