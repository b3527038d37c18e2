"""The peer of the file import benchmark: the import most applications start with. The whole CSV is read into a list
(`csv.DictReader`), each row validated with pydantic (bad rows collected with their row numbers), and the good
rows stored with the SQLAlchemy ORM (`add_all` of feedback rows and their `feedback.received` outbox rows, a commit
every 500 rows). Run in its own process, so that its peak memory is its own:

    python -m bench.file_import.naive DATABASE_URL CSV TENANT_ID PARTNER_ID

Prints one JSON line: {"seconds", "accepted", "rejected", "before_mb", "peak_mb"}.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sys
import time
import uuid
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench.ingest.peers import (
    EVENT_TYPE,
    SUBJECT,
    Caller,
    FeedbackRow,
    OutboxRow,
    RecordIn,
    received_event,
    row_values,
)

CHUNK_ROWS = 500


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory so far (VmHWM), MB; this process by default."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def naive_import(url: str, path: Path, caller: Caller) -> dict[str, float]:
    before_mb = peak_rss_mb()
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    valid: list[RecordIn] = []
    rejected: list[tuple[int, str]] = []
    for number, record in enumerate(records, start=2):  # row 1 is the header
        try:
            valid.append(RecordIn.model_validate({k: v for k, v in record.items() if v}))
        except ValidationError as exc:
            rejected.append((number, str(exc.errors()[0]["loc"])))
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    now = dt.datetime.now(dt.UTC)
    tenant = str(caller.tenant_id)
    try:
        for start in range(0, len(valid), CHUNK_ROWS):
            async with sessions() as session:
                rows, events = [], []
                for item in valid[start : start + CHUNK_ROWS]:
                    values = row_values(caller, item, now)
                    rows.append(FeedbackRow(**values))
                    event_id, payload, trace_id = received_event(values, values["id"])
                    events.append(
                        OutboxRow(
                            event_id=event_id,
                            subject=SUBJECT,
                            event_type=EVENT_TYPE,
                            tenant_id=tenant,
                            payload=payload,
                            trace_id=trace_id,
                        )
                    )
                session.add_all(rows)
                session.add_all(events)
                await session.commit()
    finally:
        await engine.dispose()
    return {
        "seconds": time.perf_counter() - started,
        "accepted": len(valid),
        "rejected": len(rejected),
        "before_mb": before_mb,
        "peak_mb": peak_rss_mb(),
    }


def main(argv: list[str]) -> int:
    url, path, tenant_id, partner_id = argv
    caller = Caller(tenant_id=uuid.UUID(tenant_id), partner_id=uuid.UUID(partner_id))
    print(json.dumps(asyncio.run(naive_import(url, Path(path), caller))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
