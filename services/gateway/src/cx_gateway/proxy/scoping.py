"""The gateway's own org-scope check on forwarded answers (defence in depth: the owning service scopes first).

Each resource says which fields of its items name the org units an item belongs to, because that differs: a ticket
is about the touchpoint's store (`org_unit_id`) and is assigned to a unit that moves up on escalation
(`assigned_org_unit_id`); an improvement task is owned by a department (`department_id`) while its `org_unit_id` is
the scope of the metric it should move (often HQ); a touchpoint or business calendar set on HQ applies to every unit
below it. An item is visible when one of its fields names a unit in the caller's subtree (or, for configuration
that applies downwards, a unit above the caller). Only the answer's top level is checked: the object, or the entries
of a list / `items` page (an entry naming none of the fields, e.g. a ticket comment, is not an item of this kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScopeRule:
    fields: tuple[str, ...] = ("org_unit_id",)
    # configuration set on a unit applies to everything below it: visible from below too
    inherited: bool = False
    # an item naming no unit: tenant-wide configuration (visible) or data nobody below the top may see
    unowned_visible: bool = True
    why: str = ""


DEFAULT_RULE = ScopeRule(why="items that name an `org_unit_id` must be in the caller's subtree")
RULES: dict[str, ScopeRule] = {
    "responses": ScopeRule(unowned_visible=False, why="the unit the response was collected for"),
    "feedback": ScopeRule(unowned_visible=False, why="the unit the feedback is about"),
    "alerts": ScopeRule(unowned_visible=False, why="the unit of the signal that raised it"),
    "tickets": ScopeRule(
        ("org_unit_id", "assigned_org_unit_id"),
        unowned_visible=False,
        why="the touchpoint's store it is about, or the unit it is assigned to now (moves up on escalation)",
    ),
    "tasks": ScopeRule(
        ("department_id", "org_unit_id"),
        unowned_visible=False,
        why="the owner department (how alerts scopes tasks), or the unit whose metric it is to improve",
    ),
    "touchpoints": ScopeRule(inherited=True, why="a touchpoint of HQ or a region serves every unit below"),
    "calendars": ScopeRule(inherited=True, why="a business calendar applies to its unit's subtree"),
}


def rule_for(resource: str) -> ScopeRule:
    return RULES.get(resource, DEFAULT_RULE)


@dataclass(frozen=True)
class CallerUnits:
    """The caller's subtree (`None`: the whole tenant) and the units above its own."""

    subtree: frozenset[str] | None
    above: frozenset[str] = frozenset()


def visible(item: Any, rule: ScopeRule, caller: CallerUnits) -> bool:
    if caller.subtree is None or not isinstance(item, dict):
        return True
    named = [item[f] for f in rule.fields if f in item]
    if not named:
        return True  # not an item of this kind (e.g. an action's summary)
    units = {str(v) for v in named if v not in (None, "")}
    if not units:
        return rule.unowned_visible
    if units & caller.subtree:
        return True
    return rule.inherited and bool(units & caller.above)


def filter_scoped(body: Any, rule: ScopeRule, caller: CallerUnits) -> tuple[Any, bool]:
    """(filtered body, visible?) — lists lose out-of-scope items; an out-of-scope object is not visible."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return {**body, "items": [i for i in body["items"] if visible(i, rule, caller)]}, True
    if isinstance(body, list):
        return [i for i in body if visible(i, rule, caller)], True
    return body, visible(body, rule, caller)


# The audit trail (alerts) is tenant-wide and not scoped by org unit: callers below the root may read only the
# entries of a ticket or task they can see.
AUDITED = {"ticket": "tickets", "task": "tasks"}


def audit_subject(rest: str, params: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(resource, item id) an org-scoped caller's audit query is limited to; None when it is not so limited."""
    if rest:
        return None
    values = dict(params)
    kinds = [v for k, v in params if k == "entity_type"]
    ids = [v for k, v in params if k == "entity_id"]
    if len(kinds) != 1 or len(ids) != 1 or values["entity_type"] not in AUDITED or not ids[0]:
        return None
    return AUDITED[kinds[0]], ids[0]
