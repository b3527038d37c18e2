"""The demo tenant's sample data goes into the real survey, ingest and alerts services over HTTP (each on its own
loopback socket with its own database, all on one JetStream), verifying the gateway's tokens through its JWKS.
A second run loads nothing twice. The full-size load runs in the e2e suite with `make run`'s stack."""

from __future__ import annotations

import json

import httpx

from cx_gateway.demo_data import HAND_TICKETS, DemoPlan, load_demo_data


async def test_sample_data_loads_through_the_service_apis_once(demo_platform, ev):
    async with demo_platform(analysis_enabled=False) as platform:
        gw_url, demo, token, upstream = platform.gw_url, platform.demo, platform.token, platform.upstream
        ingest_url, alerts_url = upstream.ingest, upstream.alerts
        sessions = platform.gw_app.state.runtime.sessions
        plan = DemoPlan(responses=60, feedback=40, customers=20, orders=30, concurrency=4)
        seen: list[tuple[str, int, int]] = []
        report = await load_demo_data(
            sessions,
            demo.tenant_id,
            demo.units,
            demo.users,
            token,
            upstream,
            plan,
            lambda label, done, total: seen.append((label, done, total)),
        )
        assert set(report.loaded) == {"odata", "survey", "feedback", "alerts"}, report
        assert ("survey responses", 60, 60) in seen and ("feedback items", 40, 40) in seen
        survey_summary = json.loads(report.loaded["survey"])
        assert survey_summary["responses"] == {"created": 60, "duplicate": 0}
        assert survey_summary["touchpoints"] == 12

        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=20) as http:
            fb = (await http.get(f"{ingest_url}/v1/feedback", params={"limit": 500}, headers=auth)).json()
            assert len([i for i in fb["items"] if i.get("external_id", "").startswith("demo-fb-")]) == 40
            tickets = (await http.get(f"{alerts_url}/v1/tickets", params={"limit": 100}, headers=auth)).json()
            titles = {t["title"]: t for t in tickets["items"]}
            assert {title for _, _, title in HAND_TICKETS} <= set(titles)
            assert titles[HAND_TICKETS[1][2]]["status"] == "acknowledged"
            assert {t["priority"] for t in titles.values()} >= {"P1", "P2", "P3"}
            tasks = (await http.get(f"{alerts_url}/v1/tasks", headers=auth)).json()
            assert [t["status"] for t in tasks["items"]] == ["submitted"]
            rules = (await http.get(f"{alerts_url}/v1/rules", headers=auth)).json()
            assert len(rules["items"]) == 2
            # store managers own their store's tickets (manager_user_id travelled with the org events)
            sh = [t for t in tickets["items"] if t["org_unit_id"] == str(demo.units["S-SH-01"])]
            assert sh and all(t["owner_user_id"] == str(demo.users["store.manager@demo.cx"]) for t in sh)

        # the responses reached the gateway read model through JetStream
        headers = {"Authorization": f"Bearer {token}"}

        async def counted() -> bool:
            async with httpx.AsyncClient(timeout=20) as http:
                r = await http.get(f"{gw_url}/api/v1/analytics/overview", headers=headers)
            return r.json()["responses"] == 60 and r.json()["tickets_open"] >= 5

        await ev.until(counted, 30)

        again = await load_demo_data(sessions, demo.tenant_id, demo.units, demo.users, token, upstream, plan, None)
        assert again.loaded == {} and sorted(again.skipped) == ["alerts", "feedback", "odata", "survey"]
        async with httpx.AsyncClient(timeout=20) as http:
            tasks = (await http.get(f"{alerts_url}/v1/tasks", headers=auth)).json()
            assert len(tasks["items"]) == 1
