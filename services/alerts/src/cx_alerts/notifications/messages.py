"""Notification texts in Simplified Chinese, Traditional Chinese and English (the recipient's directory locale)."""

from __future__ import annotations

from typing import Any

DEFAULT_LOCALE = "zh-Hans"

TEMPLATES: dict[str, dict[str, str]] = {
    "ticket_assigned": {
        "zh-Hans": "[{priority}] 新工单：{title}",
        "zh-Hant": "[{priority}] 新工單：{title}",
        "en": "[{priority}] New ticket: {title}",
    },
    "ticket_escalated": {
        "zh-Hans": "[{priority}] 工单已升级至{unit}：{title}",
        "zh-Hant": "[{priority}] 工單已升級至{unit}：{title}",
        "en": "[{priority}] Ticket escalated to {unit}: {title}",
    },
    "sla_breached": {
        "zh-Hans": "SLA 超时（{reason}）：{title}",
        "zh-Hant": "SLA 逾時（{reason}）：{title}",
        "en": "SLA breached ({reason}): {title}",
    },
    "ticket_comment": {
        "zh-Hans": "工单有新评论：{title}",
        "zh-Hant": "工單有新留言：{title}",
        "en": "New comment on: {title}",
    },
    "alert": {
        "zh-Hans": "[{severity}] 预警：{rule}",
        "zh-Hant": "[{severity}] 預警：{rule}",
        "en": "[{severity}] Alert: {rule}",
    },
    "compliance": {
        "zh-Hans": "[{severity}] 坐席合规：{profile}",
        "zh-Hant": "[{severity}] 坐席合規：{profile}",
        "en": "[{severity}] Agent compliance: {profile}",
    },
    "task_assigned": {
        "zh-Hans": "新改进任务：{title}",
        "zh-Hant": "新改進任務：{title}",
        "en": "New improvement task: {title}",
    },
    "task_status": {
        "zh-Hans": "改进任务「{title}」：{status}",
        "zh-Hant": "改進任務「{title}」：{status}",
        "en": 'Improvement task "{title}": {status}',
    },
}

TERMS: dict[str, dict[str, str]] = {
    "submitted": {"zh-Hans": "待审批", "zh-Hant": "待審批", "en": "awaiting approval"},
    "approved": {"zh-Hans": "已批准", "zh-Hant": "已核准", "en": "approved"},
    "rejected": {"zh-Hans": "已驳回", "zh-Hant": "已駁回", "en": "rejected"},
    "in_progress": {"zh-Hans": "执行中", "zh-Hant": "執行中", "en": "in progress"},
    "completed": {"zh-Hans": "待验收", "zh-Hant": "待驗收", "en": "awaiting acceptance"},
    "accepted": {"zh-Hans": "已验收", "zh-Hant": "已驗收", "en": "accepted"},
    "returned": {"zh-Hans": "已退回", "zh-Hant": "已退回", "en": "returned"},
    "first_response": {"zh-Hans": "首次响应", "zh-Hant": "首次回應", "en": "first response"},
    "resolution": {"zh-Hans": "解决时限", "zh-Hant": "解決時限", "en": "resolution"},
}


def normalise_locale(locale: str | None) -> str:
    value = (locale or "").replace("_", "-").lower()
    if value.startswith("en"):
        return "en"
    if value in ("zh-hant", "zh-tw", "zh-hk", "zh-mo"):
        return "zh-Hant"
    return DEFAULT_LOCALE


def render(template: str, locale: str | None, params: dict[str, Any]) -> str:
    lang = normalise_locale(locale)
    localised = {k: TERMS[v][lang] if isinstance(v, str) and v in TERMS else v for k, v in params.items()}
    return TEMPLATES[template][lang].format(**localised)
