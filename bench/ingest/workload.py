"""The requests every peer gets: batches of 100 feedback records of about 1 KB each (JSON), per connection.

Each request of a connection carries 90 new records, 5 exact repeats of records the same connection sent in its
previous request (natural-key duplicates) and 5 changed versions of such records (updates), so dedup with update
semantics is exercised on every request. The texts are Chinese and English customer feedback; some carry a phone
number or an e-mail address (PII for the redactor). Generation is deterministic: every peer gets the same bodies.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from typing import Any

RECORDS = 100
REPEATS = 5
UPDATES = 5

_ZH = [
    "配送太慢了，等了整整三天才到，包装还破了一个角。",
    "客服态度很好，耐心解释了退货流程，点赞。",
    "价格比门店贵了不少，性价比一般，下次再考虑。",
    "门店排队太久，收银台只开了一个，店员也不太热情。",
    "衣服质量不错，面料舒服，就是尺码偏大一号。",
    "App 下单流程太复杂，优惠券用不了，体验很差。",
    "外卖送到的时候已经凉了，骑手还说是商家出餐慢。",
    "会员积分规则看不懂，客服也解释不清楚。",
]
_EN = [
    "Delivery was late and the box was damaged when it finally arrived. ",
    "The staff at the store were friendly and helped me find the right size. ",
    "Checkout took forever because only one register was open on a Saturday. ",
    "The app keeps logging me out and the coupon code never applies at checkout. ",
    "Great value for money, the quality is much better than I expected. ",
    "I called the hotline twice and nobody could tell me where my refund is. ",
]
CHANNELS = ("review", "email", "social", "store", "crm", "chat")
TOUCHPOINTS = (("tp-delivery", "post_sale"), ("tp-checkout", "in_sale"), ("tp-app", "pre_sale"))


def _pool(sentences: list[str], length: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(64):
        parts: list[str] = []
        while sum(len(p) for p in parts) < length:
            parts.append(rng.choice(sentences))
        out.append("".join(parts))
    return out


_ZH_TEXTS = _pool(_ZH, 225, 1)
_EN_TEXTS = _pool(_EN, 690, 2)


def _text(seed: int, n: int) -> tuple[str, str]:
    if n % 3 == 2:
        text = _EN_TEXTS[seed % 64]
        if n % 7 == 0:
            text += f"Call me on +44 20 7946 {n % 10000:04d} or mail jane.doe{n}@example.com."
        return text, "en"
    text = _ZH_TEXTS[seed % 64]
    if n % 7 == 0:
        text += f"我的手机号是138{n % 100000000:08d}，请尽快联系我。"
    return text, "zh-Hans"


def record(conn: int, n: int, revision: int = 0) -> dict[str, Any]:
    text, language = _text((conn * 1_000_003 + n * 7919 + revision * 104_729) >> 3, n)
    touchpoint, stage = TOUCHPOINTS[n % len(TOUCHPOINTS)]
    occurred = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n * 7 + conn)
    return {
        "external_id": f"c{conn}-r{n:07d}",
        "channel": CHANNELS[n % len(CHANNELS)],
        "text": text,
        "title": f"订单反馈 #{n}" if language == "zh-Hans" else f"Order feedback #{n}",
        "touchpoint_id": touchpoint,
        "journey_stage": stage,
        "org_unit_id": f"store-{n % 40:03d}",
        "customer_key": f"cust-{(conn * 7919 + n) % 50000:05d}",
        "product_sku": f"SKU-{n % 500:04d}",
        "language": language,
        "occurred_at": occurred.isoformat(),
        "scores": {"rating": float(1 + n % 5)},
        "attributes": {"order_no": f"SO{conn:02d}{n:09d}", "platform": "app" if n % 2 else "web", "rev": revision},
    }


_BODIES: dict[tuple[int, int], bytes] = {}


def _picked(conn: int, request: int) -> list[tuple[int, int]]:
    """(record number, revision) of each record of request `request` of connection `conn`."""
    base = request * RECORDS
    if request == 0:
        return [(base + i, 0) for i in range(RECORDS)]
    previous = _picked_cache(conn, request - 1)
    rng = random.Random(conn * 31 + request)
    old = rng.sample(previous, REPEATS + UPDATES)
    fresh = [(base + i, 0) for i in range(RECORDS - REPEATS - UPDATES)]
    return fresh + old[:REPEATS] + [(n, rev + 1) for n, rev in old[REPEATS:]]


_PICKED: dict[tuple[int, int], list[tuple[int, int]]] = {}


def _picked_cache(conn: int, request: int) -> list[tuple[int, int]]:
    key = (conn, request)
    if key not in _PICKED:
        for r in range(request + 1):
            if (conn, r) not in _PICKED:
                _PICKED[(conn, r)] = _picked(conn, r)
    return _PICKED[key]


def body(conn: int, request: int) -> bytes:
    """The JSON body of request `request` of connection `conn` (memoised: every peer sends the same bytes)."""
    key = (conn, request)
    if key not in _BODIES:
        records = [record(conn, n, rev) for n, rev in _picked_cache(conn, request)]
        _BODIES[key] = json.dumps({"items": records}, ensure_ascii=False, separators=(",", ":")).encode()
    return _BODIES[key]


def prefill(connections: int, per_connection: int) -> None:
    """Generate bodies ahead of the measurement, so no peer pays for them while it is timed."""
    for conn in range(connections):
        for request in range(per_connection):
            body(conn, request)


@dataclass
class Connection:
    """Requests of one closed-loop connection: `next()` -> (Idempotency-Key, JSON body)."""

    conn: int
    peer: str
    sent: int = 0

    def next(self) -> tuple[str, bytes]:
        request = self.sent
        self.sent += 1
        return f"{self.peer}-c{self.conn}-q{request}", body(self.conn, request)


def record_size() -> float:
    """Average JSON size of one record in bytes."""
    sample = [json.dumps(record(0, n), ensure_ascii=False, separators=(",", ":")).encode() for n in range(300)]
    return sum(len(s) for s in sample) / len(sample)
