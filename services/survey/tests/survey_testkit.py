"""Survey definitions and helpers shared by the tests."""

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 300) -> None:
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def t(text):
    return {"zh-Hans": text, "zh-Hant": text, "en": text}


def choices(*ids):
    return [{"id": i, "label": t(i)} for i in ids]


ALL_TYPES = {
    "title": t("all types"),
    "pages": [
        {
            "id": "p1",
            "questions": [
                {"id": "nps", "type": "nps", "title": t("nps"), "required": True},
                {"id": "csat", "type": "csat", "title": t("csat"), "required": True},
                {"id": "ces", "type": "ces", "title": t("ces")},
                {"id": "stars", "type": "rating", "scale": 5, "title": t("stars")},
                {
                    "id": "single",
                    "type": "single_choice",
                    "title": t("s"),
                    "choices": choices("a", "b"),
                    "allow_other": True,
                },
                {
                    "id": "multi",
                    "type": "multiple_choice",
                    "title": t("m"),
                    "choices": choices("x", "y", "z"),
                    "allow_other": True,
                    "validation": {"max_choices": 3},
                },
                {"id": "drop", "type": "dropdown", "title": t("d"), "choices": choices("bj", "sh")},
                {
                    "id": "grid",
                    "type": "matrix",
                    "title": t("g"),
                    "rows": choices("r1", "r2"),
                    "columns": choices("c1", "c2"),
                },
                {"id": "rank", "type": "ranking", "title": t("r"), "choices": choices("price", "speed", "service")},
                {"id": "why", "type": "text", "title": t("why"), "validation": {"max_length": 50}},
                {
                    "id": "age",
                    "type": "number",
                    "title": t("age"),
                    "validation": {"min": 0, "max": 120, "integer": True},
                },
                {"id": "day", "type": "date", "title": t("day")},
                {"id": "me", "type": "contact", "title": t("me")},
            ],
        }
    ],
}

GOOD = {
    "nps": 3,
    "csat": 2,
    "ces": 6,
    "stars": 4,
    "single": {"choice": "other", "other": "朋友推荐"},
    "multi": {"choices": ["x", "other"], "other": "包装"},
    "drop": "sh",
    "grid": {"r1": "c2", "r2": "c1"},
    "rank": ["speed", "price", "service"],
    "why": "排队太久了",
    "age": 30,
    "day": "2026-11-01",
    "me": {"name": "王", "phone": "13800000000", "email": "w@example.com"},
}


LOGIC = {
    "title": t("logic"),
    "pages": [
        {
            "id": "p1",
            "questions": [
                {"id": "nps", "type": "nps", "title": t("nps"), "required": True},
                {
                    "id": "why_low",
                    "type": "text",
                    "title": t("why"),
                    "required": True,
                    "display_if": {"all": [{"question": "nps", "op": "lte", "value": 6}]},
                },
            ],
            "jumps": [{"when": {"all": [{"question": "nps", "op": "gte", "value": 9}]}, "to": "end"}],
        },
        {
            "id": "p2",
            "display_if": {"any": [{"hidden": "channel", "op": "eq", "value": "app"}]},
            "questions": [{"id": "app", "type": "csat", "title": t("app"), "required": True}],
        },
        {"id": "p3", "questions": [{"id": "more", "type": "text", "title": t("more"), "required": True}]},
    ],
}
