"""Rule condition trees: a JSON document validated by pydantic (errors name the position, e.g.
`definition.condition.conditions.1.patterns.0`), evaluated against a normalised `Signal`.

    {"type": "any", "conditions": [
        {"type": "score", "metric": "nps", "op": "<=", "value": 6},
        {"type": "all", "conditions": [
            {"type": "sentiment", "label": "negative", "min_confidence": 0.8},
            {"type": "aspect", "path": ["服务"], "polarity": "negative"}]}]}
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cx_alerts.signals.service import Signal, intent_name
from cx_common.logging import get_logger

log = get_logger(__name__)

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

# the nlp service's risk intents (cx.nlp.v1: churn_risk, regulator/media/legal threats, safety and compliance risk)
HIGH_RISK_INTENTS = (
    "churn_risk",
    "regulator_threat",
    "media_threat",
    "legal_threat",
    "safety_risk",
    "compliance_risk",
)


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreCondition(_Node):
    type: Literal["score"]
    metric: Literal["nps", "csat", "ces"]
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float


class SentimentCondition(_Node):
    type: Literal["sentiment"]
    label: Literal["negative", "neutral", "positive"]
    min_confidence: float = Field(default=0.0, ge=0, le=1)


class AspectCondition(_Node):
    type: Literal["aspect"]
    path: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=3)
    polarity: Literal["negative", "neutral", "positive"] | None = None
    min_confidence: float = Field(default=0.0, ge=0, le=1)


class IntentCondition(_Node):
    type: Literal["intent"]
    intent: str = Field(min_length=1, max_length=64, description="e.g. churn_risk, complaint (churn-risk works too)")
    min_score: float = Field(default=0.5, ge=0, le=1)

    @field_validator("intent")
    @classmethod
    def _spelling(cls, intent: str) -> str:
        return intent_name(intent)


class KeywordCondition(_Node):
    type: Literal["keywords"]
    any_of: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    case_sensitive: bool = False


class RegexCondition(_Node):
    """Patterns in Python `re` syntax, run by the `regex` engine with a time limit per text: a pattern that would
    backtrack for minutes on some text (`(a|aa)+$`) counts as no match there instead of stalling all alerting."""

    type: Literal["regex"]
    patterns: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(min_length=1, max_length=50)

    @field_validator("patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for index, pattern in enumerate(patterns):
            try:  # `re` names the position best (an unclosed group: where it opens); the engine must take it too
                re.compile(pattern)
                regex.compile(pattern)
            except (re.error, regex.error) as exc:
                raise ValueError(
                    f"pattern {index} is not a valid regular expression at position {exc.pos}: {exc.msg}"
                ) from exc
        return patterns


class HighRiskCondition(_Node):
    """High-risk dialogue signals: any risk intent above `min_score`, or any of the risk phrases in the text."""

    type: Literal["high_risk"]
    intents: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=lambda: list(HIGH_RISK_INTENTS)
    )
    min_score: float = Field(default=0.6, ge=0, le=1)
    phrases: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    @field_validator("intents")
    @classmethod
    def _spelling(cls, intents: list[str]) -> list[str]:
        return [intent_name(i) for i in intents]


class VolumeSpikeCondition(_Node):
    """Mentions of an aspect (within the signal's org unit subtree) in the last `window_minutes`, compared with the
    average count per window over the previous `baseline_days`."""

    type: Literal["volume_spike"]
    path: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=3)
    negative_only: bool = True
    window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    baseline_days: int = Field(default=7, ge=1, le=30)
    factor: float = Field(default=2.0, gt=1)
    min_count: int = Field(default=5, ge=1)


class AllCondition(_Node):
    type: Literal["all"]
    conditions: list[Condition] = Field(min_length=1)


class AnyCondition(_Node):
    type: Literal["any"]
    conditions: list[Condition] = Field(min_length=1)


class NotCondition(_Node):
    type: Literal["not"]
    condition: Condition


Condition = Annotated[
    AllCondition
    | AnyCondition
    | NotCondition
    | ScoreCondition
    | SentimentCondition
    | AspectCondition
    | IntentCondition
    | KeywordCondition
    | RegexCondition
    | HighRiskCondition
    | VolumeSpikeCondition,
    Field(discriminator="type"),
]
AllCondition.model_rebuild()
AnyCondition.model_rebuild()
NotCondition.model_rebuild()

# (aspect key, since, until, org unit, negative only) -> count
AspectCounter = Callable[[str, dt.datetime, dt.datetime, str | None, bool], Awaitable[int]]


REGEX_TIMEOUT_S = 0.05


def _search(pattern: str, text: str) -> bool:
    try:
        return regex.search(pattern, text, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        log.warning("rule_regex_timeout", pattern=pattern[:200], text_length=len(text))
        return False


class Evaluation:
    def __init__(self, signal: Signal, counter: AspectCounter | None) -> None:
        self.signal = signal
        self.counter = counter
        self.reasons: list[str] = []

    async def check(self, node: object) -> bool:
        s = self.signal
        match node:
            case AllCondition(conditions=conds):
                mark = len(self.reasons)
                for c in conds:
                    if not await self.check(c):
                        del self.reasons[mark:]  # a failed branch explains nothing
                        return False
                return True
            case AnyCondition(conditions=conds):
                for c in conds:
                    if await self.check(c):
                        return True
                return False
            case NotCondition(condition=inner):
                sub = Evaluation(s, self.counter)
                if await sub.check(inner):
                    return False
                self.reasons.append(f"not {inner.type}")
                return True
            case ScoreCondition(metric=metric, op=op, value=value):
                actual = getattr(s, metric)
                if actual is not None and _OPS[op](actual, value):
                    self.reasons.append(f"{metric} {actual:g} {op} {value:g}")
                    return True
                return False
            case SentimentCondition(label=label, min_confidence=conf):
                if s.sentiment == label and s.sentiment_score >= conf:
                    self.reasons.append(f"sentiment {label} ({s.sentiment_score:.2f})")
                    return True
                return False
            case AspectCondition(path=path, polarity=polarity, min_confidence=conf):
                for a in s.aspects:
                    if (
                        a.path[: len(path)] == path
                        and (polarity is None or a.polarity == polarity)
                        and a.confidence >= conf
                    ):
                        self.reasons.append(f"aspect {'/'.join(a.path)} {a.polarity}")
                        return True
                return False
            case IntentCondition(intent=intent, min_score=min_score):
                score = s.intents.get(intent)
                if score is not None and score >= min_score:
                    self.reasons.append(f"intent {intent} ({score:.2f})")
                    return True
                return False
            case KeywordCondition(any_of=words, case_sensitive=cs):
                haystack = " ".join([s.text, *s.keywords])
                if not cs:
                    haystack = haystack.casefold()
                for w in words:
                    if (w if cs else w.casefold()) in haystack:
                        self.reasons.append(f"keyword {w!r}")
                        return True
                return False
            case RegexCondition(patterns=patterns):
                for p in patterns:
                    if _search(p, s.text):
                        self.reasons.append(f"pattern {p!r}")
                        return True
                return False
            case HighRiskCondition(intents=intents, min_score=min_score, phrases=phrases):
                for intent in intents:
                    score = s.intents.get(intent)
                    if score is not None and score >= min_score:
                        self.reasons.append(f"high-risk intent {intent} ({score:.2f})")
                        return True
                text = s.text.casefold()
                for phrase in phrases:
                    if phrase.casefold() in text:
                        self.reasons.append(f"high-risk phrase {phrase!r}")
                        return True
                return False
            case VolumeSpikeCondition():
                return await self._spike(node)
        raise TypeError(f"unknown condition {node!r}")

    async def _spike(self, node: VolumeSpikeCondition) -> bool:
        key = "/".join(node.path)
        mentioned = self.signal.aspect_keys(negative_only=node.negative_only)
        if key not in mentioned or self.counter is None:
            return False
        end = self.signal.occurred_at + dt.timedelta(microseconds=1)
        window = dt.timedelta(minutes=node.window_minutes)
        org = self.signal.org_unit_id or None
        current = await self.counter(key, end - window, end, org, node.negative_only)
        base_start = end - window - dt.timedelta(days=node.baseline_days)
        baseline_total = await self.counter(key, base_start, end - window, org, node.negative_only)
        windows = (dt.timedelta(days=node.baseline_days) / window) or 1
        baseline = baseline_total / windows
        if current >= node.min_count and current >= node.factor * max(baseline, 1e-9):
            self.reasons.append(
                f"volume spike {key}: {current} in {node.window_minutes} min vs baseline {baseline:.2f}"
            )
            return True
        return False


async def evaluate(condition: object, signal: Signal, counter: AspectCounter | None = None) -> tuple[bool, list[str]]:
    ev = Evaluation(signal, counter)
    matched = await ev.check(condition)
    return matched, ev.reasons if matched else []
