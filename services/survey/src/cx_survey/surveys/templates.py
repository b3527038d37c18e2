"""Ready-made definitions: NPS, CSAT after service, post-purchase."""

from __future__ import annotations

from typing import Any


def _t(zh_hans: str, zh_hant: str, en: str) -> dict[str, str]:
    return {"zh-Hans": zh_hans, "zh-Hant": zh_hant, "en": en}


_REASON = {
    "id": "reason",
    "type": "text",
    "title": _t("请告诉我们您打分的主要原因", "請告訴我們您評分的主要原因", "What is the main reason for your score?"),
    "validation": {"max_length": 2000},
}

TEMPLATES: dict[str, dict[str, Any]] = {
    "nps": {
        "title": _t("推荐意愿调查", "推薦意願調查", "How likely are you to recommend us?"),
        "thank_you": _t("感谢您的反馈！", "感謝您的回饋！", "Thank you for your feedback!"),
        "pages": [
            {
                "id": "p1",
                "questions": [
                    {
                        "id": "nps",
                        "type": "nps",
                        "required": True,
                        "title": _t(
                            "您有多大可能向朋友或同事推荐我们？",
                            "您有多大可能向朋友或同事推薦我們？",
                            "How likely are you to recommend us to a friend or colleague?",
                        ),
                    },
                    _REASON,
                ],
            }
        ],
    },
    "csat_after_service": {
        "title": _t("服务满意度调查", "服務滿意度調查", "How was our service?"),
        "thank_you": _t("感谢您的评价！", "感謝您的評價！", "Thank you for rating our service!"),
        "pages": [
            {
                "id": "p1",
                "questions": [
                    {
                        "id": "csat",
                        "type": "csat",
                        "required": True,
                        "title": _t(
                            "您对本次服务的满意程度如何？",
                            "您對本次服務的滿意程度如何？",
                            "How satisfied are you with the service?",
                        ),
                    },
                    {
                        "id": "ces",
                        "type": "ces",
                        "title": _t(
                            "解决您的问题有多容易？",
                            "解決您的問題有多容易？",
                            "How easy was it to get your issue resolved?",
                        ),
                    },
                    {
                        "id": "issues",
                        "type": "multiple_choice",
                        "allow_other": True,
                        "display_if": {"all": [{"question": "csat", "op": "lte", "value": 3}]},
                        "title": _t("哪些方面需要改进？", "哪些方面需要改進？", "What should we improve?"),
                        "choices": [
                            {"id": "wait", "label": _t("等待时间", "等待時間", "Waiting time")},
                            {"id": "attitude", "label": _t("服务态度", "服務態度", "Staff attitude")},
                            {"id": "solution", "label": _t("解决方案", "解決方案", "The solution")},
                        ],
                    },
                    _REASON,
                ],
            }
        ],
    },
    "post_purchase": {
        "title": _t("购物体验调查", "購物體驗調查", "Your purchase experience"),
        "thank_you": _t("感谢您的购买与反馈！", "感謝您的購買與回饋！", "Thank you for your purchase and feedback!"),
        "pages": [
            {
                "id": "p1",
                "questions": [
                    {
                        "id": "nps",
                        "type": "nps",
                        "required": True,
                        "title": _t(
                            "您有多大可能向朋友推荐本店？",
                            "您有多大可能向朋友推薦本店？",
                            "How likely are you to recommend our store?",
                        ),
                    },
                    {
                        "id": "product",
                        "type": "rating",
                        "scale": 5,
                        "title": _t("商品质量", "商品品質", "Product quality"),
                    },
                    {
                        "id": "delivery",
                        "type": "matrix",
                        "title": _t("配送体验", "配送體驗", "Delivery experience"),
                        "rows": [
                            {"id": "speed", "label": _t("速度", "速度", "Speed")},
                            {"id": "packaging", "label": _t("包装", "包裝", "Packaging")},
                        ],
                        "columns": [
                            {"id": "bad", "label": _t("差", "差", "Poor")},
                            {"id": "ok", "label": _t("一般", "一般", "OK")},
                            {"id": "good", "label": _t("好", "好", "Good")},
                        ],
                    },
                ],
                "jumps": [{"when": {"all": [{"question": "nps", "op": "gte", "value": 9}]}, "to": "end"}],
            },
            {
                "id": "p2",
                "questions": [
                    {
                        "id": "improve",
                        "type": "text",
                        "required": True,
                        "title": _t("我们怎样做才能更好？", "我們怎樣做才能更好？", "What could we do better?"),
                    },
                    {
                        "id": "callback",
                        "type": "contact",
                        "contact_fields": ["name", "phone"],
                        "title": _t(
                            "如需回访，请留下联系方式",
                            "如需回訪，請留下聯絡方式",
                            "Leave your contact if we may call you back",
                        ),
                    },
                ],
            },
        ],
    },
}
