"""Two tenants on a real local stack for the isolation and security tests, loaded through the real APIs (gateway,
survey public API, partner API), and the list/get endpoints every role of them is asked.

The endpoints are not listed here: they are read from the running services' OpenAPI documents (the gateway's own
routes, every GET of survey, ingest and alerts called directly with a gateway-issued token, and the same again
through the gateway for the resources it forwards), so a new endpoint is covered as soon as it exists. Path parameters
are filled from the list endpoint above them (`/v1/tickets/{ticket_id}` from `/v1/tickets`); a parameter that
cannot be filled fails the test rather than leave the endpoint unchecked.

What counts as a leak:
- tenant: any id (UUID) or marker text of the other tenant in any answer to a user of this tenant, on lists and on
  gets of the other tenant's ids (a 2xx for another tenant's id is a leak in itself when it carries its data);
- scope: a store's user seeing the ids or marker texts of another store's responses, feedback, alerts or tickets.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from e2e_stack import LocalStack, client, poll

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SERVICES = ("survey", "ingest", "alerts")
# public by design (a respondent needs no login) or no tenant data at all
NOT_TENANT_DATA = re.compile(
    r"^/(healthz|readyz|metrics|s/|v1/public/|api/v1/auth/jwks|v1/surveys/(definition-schema|templates)|"
    r"v1/codebooks/templates)"
)
# roles and where they sit: HQ, the region, store 1, store 2
USERS = (
    ("owner", "owner", "hq"),
    ("admin", "admin", "hq"),
    ("analyst", "analyst", "hq"),
    ("region", "manager", "region"),
    ("manager1", "manager", "s1"),
    ("agent1", "agent", "s1"),
    ("viewer2", "viewer", "s2"),
)
STORE_DATA = ("responses", "feedback", "alerts", "tickets")  # org-scoped data kinds (last path segment)


@dataclass
class Tenant:
    name: str
    slug: str
    marker: str  # in every text this tenant writes
    units: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    api_key: str = ""
    seen_ids: set[str] = field(default_factory=set)  # every id in its owner's answers
    store_ids: dict[str, set[str]] = field(default_factory=dict)  # store -> ids of its org-scoped data
    known: dict[str, list[str]] = field(default_factory=dict)  # param -> values no list endpoint offers

    def store_marker(self, store: str) -> str:
        return f"{self.marker}-{store}"


def ok(r: httpx.Response, *codes: int) -> Any:
    assert r.status_code in (codes or (200, 201)), f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    return r.json() if r.content else None


def load_tenant(stack: LocalStack, name: str) -> Tenant:
    t = Tenant(name, f"iso-{name}-{secrets.token_hex(3)}", f"MARK{secrets.token_hex(5).upper()}")
    t.passwords = {key: f"pw-{key}-{secrets.token_urlsafe(9)}" for key, _, _ in USERS}
    with client(stack.url("gateway")) as c:
        created = ok(
            c.post(
                "/api/v1/tenants",
                headers={"X-Cx-Platform-Secret": stack.internal_secret},
                json={
                    "slug": t.slug,
                    "name": f"{name} {t.marker}",
                    "owner_email": f"owner@{t.slug}.cx",
                    "owner_password": t.passwords["owner"],
                },
            ),
            201,
        )
        t.units["hq"] = str(created["root_org_unit_id"])
        owner = ok(c.post("/api/v1/auth/login", json=login_body(t, "owner")))["access_token"]
    t.tokens["owner"] = owner
    with client(stack.url("gateway"), owner) as gw:
        for key, kind, parent in (("region", "region", "hq"), ("s1", "store", "region"), ("s2", "store", "region")):
            body = {"code": f"{key.upper()}-{name}", "name": f"{key} {t.marker}", "kind": kind}
            t.units[key] = str(ok(gw.post("/api/v1/org-units", json={**body, "parent_id": t.units[parent]}))["id"])
        for key, role, unit in USERS[1:]:
            user = {
                "email": f"{key}@{t.slug}.cx",
                "display_name": f"{key} {t.marker}",
                "password": t.passwords[key],
                "role": role,
                "org_unit_id": t.units[unit],
            }
            uid = str(ok(gw.post("/api/v1/users", json=user), 201)["id"])
            if role == "manager":
                ok(gw.patch(f"/api/v1/org-units/{t.units[unit]}", json={"manager_user_id": uid}))
    with client(stack.url("gateway")) as c:
        for key, _, _ in USERS[1:]:
            t.tokens[key] = ok(c.post("/api/v1/auth/login", json=login_body(t, key)))["access_token"]

    with client(stack.url("survey"), owner) as sv:
        ok(sv.post("/v1/journey-stages", json={"key": "visit", "name": {"en": f"Visit {t.marker}"}}), 201)
    with client(stack.url("gateway"), owner) as gw:
        ok(
            gw.post(
                "/api/v1/rules",
                json={
                    "name": f"NPS <= 6 {t.marker}",
                    "enabled": True,
                    "definition": {
                        "trigger": "survey.response.submitted",
                        "condition": {"type": "score", "metric": "nps", "op": "<=", "value": 6},
                        "actions": {"severity": "critical", "open_ticket": {"priority": "P2"}},
                        "grouping_window_minutes": 0,
                    },
                },
            )
        )
        codebook = {
            "name": f"Retail {t.marker}",
            "active": True,
            "nodes": [
                {"id": "svc", "names": {"zh-Hans": "服务", "en": "Service"}},
                {"id": "svc.staff", "parent_id": "svc", "names": {"zh-Hans": "店员", "en": "Staff"}},
                {
                    "id": "svc.staff.rude",
                    "parent_id": "svc.staff",
                    "names": {"zh-Hans": "态度", "en": "Rude"},
                    "keywords": ["rude"],
                },
            ],
        }
        cb = ok(gw.post("/api/v1/codebooks", json=codebook), 201)
        ok(gw.post(f"/api/v1/codebooks/{cb['id']}/versions", json={"note": t.marker}), 201)
        partner = {"title": f"CRM {t.marker}", "rate_limit_per_minute": 100_000, "rate_limit_burst": 10_000}
        partner_id = ok(gw.post("/api/v1/partners", json=partner))["id"]
        t.api_key = ok(gw.post(f"/api/v1/partners/{partner_id}/keys", json={"name": t.marker}), 201)["key"]
        for store in ("s1", "s2"):
            mark = t.store_marker(store)  # on the store's data only (its configuration is tenant-wide)
            config = f"{store} {t.marker}"
            tp = poll(
                "a touchpoint (survey's org projection)",
                lambda store=store, config=config: ok(
                    gw.post(
                        "/api/v1/touchpoints",
                        json={"name": config, "stage_key": "visit", "channel": "store", "org_unit_id": t.units[store]},
                    ),
                    201,
                ),
                timeout=30,
            )
            survey = ok(
                gw.post("/api/v1/surveys", json={"title": config, "template": "nps", "touchpoint_id": tp["id"]})
            )
            ok(gw.post(f"/api/v1/surveys/{survey['id']}/publish", json={}))
            ok(
                gw.post(
                    f"/api/v1/surveys/{survey['id']}/distributions",
                    json={"name": config, "channel": "webhook", "webhook_url": "http://127.0.0.1:9/hook"},
                ),
                201,
            )
            with client(stack.url("survey")) as public:
                ok(
                    public.post(
                        f"/v1/public/surveys/{survey['id']}/responses",
                        json={"answers": {"nps": 2, "reason": f"rude staff {mark}"}},
                    ),
                    201,
                )
            ok(gw.post("/api/v1/tickets", json={"title": mark, "priority": "P3", "org_unit_id": t.units[store]}))
            with client(stack.url("ingest")) as ingest:
                ok(
                    ingest.post(
                        "/v1/feedback:batch",
                        headers={"Authorization": f"ApiKey {t.api_key}", "Idempotency-Key": mark},
                        json={
                            "items": [
                                {
                                    "external_id": mark,
                                    "channel": "chat",
                                    "language": "en",
                                    "text": f"the staff was rude {mark}",
                                    "org_unit_id": t.units[store],
                                }
                            ]
                        },
                    ),
                    200,
                    201,
                    207,
                )
        ok(gw.post("/api/v1/kpis", json={"code": f"k{name}", "name": f"KPI {t.marker}", "formula": "nps"}), 201)
        ok(gw.post("/api/v1/clusters/runs", json={"min_cluster_size": 2}), 200, 201, 202)
        with client(stack.url("ingest")) as ingest:
            csv = f"external_id,channel,text\nIMP-{t.marker},email,slow delivery {t.marker}\n"
            imported = ok(
                ingest.post(
                    "/v1/feedback:import",
                    headers={"Authorization": f"ApiKey {t.api_key}"},
                    files={"file": ("feedback.csv", csv.encode(), "text/csv")},
                ),
                200,
                201,
                202,
            )
            t.known["import_id"] = [str(imported.get("import_id") or imported["id"])]
        ok(
            gw.post(
                "/api/v1/tasks",
                json={
                    "title": f"train the staff {t.marker}",
                    "source_kind": "aspect",
                    "aspect_path": ["Service", "Staff", "Rude"],
                    "department_id": t.units["hq"],
                },
            ),
            201,
        )

        def settled() -> bool:
            tickets = ok(gw.get("/api/v1/tickets", params={"limit": 100}))["items"]
            feedback = ok(gw.get("/api/v1/feedback", params={"limit": 100}))["items"]
            return len(tickets) >= 4 and len(feedback) >= 4 and all(f["analysis_state"] == "done" for f in feedback)

        poll("tickets from the responses and analysed feedback", settled, timeout=60)
    return t


def login_body(t: Tenant, key: str) -> dict[str, str]:
    return {"tenant": t.slug, "email": f"{key}@{t.slug}.cx", "password": t.passwords[key]}


# -- the endpoints, from the OpenAPI documents ---------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    service: str  # where the request goes: gateway, survey, ingest, alerts
    template: str

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{([^}]+)\}", self.template)


def get_endpoints(stack: LocalStack) -> list[Endpoint]:
    docs = {name: httpx.get(f"{stack.url(name)}/openapi.json", timeout=30).json() for name in ("gateway", *SERVICES)}
    forwarded = {m.group(1) for p in docs["gateway"]["paths"] if (m := re.match(r"^/api/v1/([^/{]+)/\{rest\}$", p))}
    out: list[Endpoint] = []
    for path, ops in docs["gateway"]["paths"].items():
        resource = path.removeprefix("/api/v1/").split("/", 1)[0]
        if "get" in ops and not NOT_TENANT_DATA.match(path) and resource not in forwarded:
            out.append(Endpoint("gateway", path))
    for service in SERVICES:
        for path, ops in docs[service]["paths"].items():
            if "get" not in ops or NOT_TENANT_DATA.match(path):
                continue
            out.append(Endpoint(service, path))
            first = path.removeprefix("/v1/").split("/", 1)[0]
            if path.startswith("/v1/") and first in forwarded:
                out.append(Endpoint("gateway", "/api" + path))
    return out


def items_of(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return [i for i in body["items"] if isinstance(i, dict)]
    if isinstance(body, list):
        return [i for i in body if isinstance(i, dict)]
    return []


def parent_values(param: str, lists: dict[str, list[dict[str, Any]]], parent: str) -> list[str]:
    """Values for `param` from the list endpoint right above it, else from any list of that kind."""
    key = "id" if param.endswith("_id") else param
    stem = param.removesuffix("_id").replace("_", "-")
    candidates = [parent] if parent in lists else []
    candidates += [p for p in lists if p.rsplit("/", 1)[-1] in (f"{stem}s", stem) and p != parent]
    for path in candidates:
        found = [str(i[key]) for i in lists[path] if i.get(key) not in (None, "")]
        if found:
            return found[:1]
    return []


def crawl(
    stack: LocalStack, token: str, endpoints: list[Endpoint], known: dict[str, list[str]]
) -> tuple[dict[Endpoint, list[str]], list[str]]:
    """As `token`'s user: concrete paths for every endpoint (params filled from the lists above them), and the
    endpoints whose parameters could not be filled."""
    lists: dict[str, list[dict[str, Any]]] = {}
    concrete: dict[Endpoint, list[str]] = {}
    unresolved: list[str] = []
    pending = sorted(endpoints, key=lambda e: (len(e.params), e.template.count("/")))
    for _ in range(4):  # nested parameters resolve over a few rounds
        later = []
        for ep in pending:
            paths = [ep.template]
            for param in ep.params:
                filled = []
                for path in paths:
                    head = path.split("{" + param + "}", 1)[0].rstrip("/")
                    for value in parent_values(param, lists, key_of(ep.service, head)) or known.get(param, []):
                        filled.append(path.replace("{" + param + "}", value, 1))
                paths = filled
            if not paths:
                later.append(ep)
                continue
            concrete[ep] = paths
            with client(stack.url(ep.service), token) as c:
                for path in paths:
                    r = c.get(path)
                    if r.status_code == 200 and "json" in r.headers.get("content-type", ""):
                        lists.setdefault(key_of(ep.service, path), []).extend(items_of(r.json()))
        if not later:
            break
        pending = later
    unresolved = [f"{e.service} {e.template}" for e in pending if e not in concrete]
    return concrete, unresolved


def key_of(service: str, path: str) -> str:
    return path.removeprefix("/api") if service == "gateway" and path.startswith("/api/v1/") else path


# -- the stack -------------------------------------------------------------------------------------------------------


@dataclass
class World:
    stack: LocalStack
    tenants: dict[str, Tenant]
    endpoints: list[Endpoint]
    concrete: dict[str, dict[Endpoint, list[str]]]


def collect_ids(stack: LocalStack, t: Tenant, concrete: dict[Endpoint, list[str]]) -> None:
    """Every id in the owner's answers, and the ids of each store's org-scoped data."""
    by_store = {t.units["s1"]: "s1", t.units["s2"]: "s2"}
    t.store_ids = {"s1": set(), "s2": set()}
    for ep, paths in concrete.items():
        with client(stack.url(ep.service), t.tokens["owner"]) as c:
            for path in paths:
                r = c.get(path)
                if r.status_code != 200:
                    continue
                t.seen_ids |= set(UUID.findall(r.text))
                if path.rsplit("/", 1)[-1] in STORE_DATA and "json" in r.headers.get("content-type", ""):
                    for item in items_of(r.json()):
                        store = by_store.get(str(item.get("org_unit_id")))
                        if store and item.get("id"):
                            t.store_ids[store].add(str(item["id"]))
    assert all(len(ids) >= 4 for ids in t.store_ids.values()), t.store_ids


def leaks_in(text: str, needles: set[str], markers: tuple[str, ...], url: str) -> list[str]:
    found = [n for n in UUID.findall(text) if n in needles and n not in url]
    found += [m for m in markers if m in text]
    return sorted(set(found))


def requests_for(world: World, tenant: str, *, own: bool, other: str | None) -> list[tuple[Endpoint, str]]:
    out = []
    for name in [tenant] * own + ([other] if other else []):
        out += [(ep, path) for ep, paths in world.concrete[name].items() for path in paths]
    return out


def fetch_all(
    world: World, token: str, requests: list[tuple[Endpoint, str]]
) -> list[tuple[Endpoint, str, httpx.Response]]:
    """GET every path with `token`, one pooled client per service, a few at a time."""
    from concurrent.futures import ThreadPoolExecutor

    clients = {name: client(world.stack.url(name), token) for name in ("gateway", *SERVICES)}
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(lambda req: clients[req[0].service].get(req[1]), requests))
    finally:
        for c in clients.values():
            c.close()
    return [(ep, path, r) for (ep, path), r in zip(requests, answers, strict=True)]
