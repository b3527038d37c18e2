"""The survey definition format (JSON, documented by a JSON Schema) and the logic that evaluates answers against it.

A definition is pages of questions. Questions and pages may carry `display_if` conditions; pages may carry `jumps`
(skip/branch logic: the first matching jump decides the next page, `"end"` finishes). Only questions that are shown
for a given set of answers are required and kept; answers to hidden questions are dropped.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Language = Literal["zh-Hans", "zh-Hant", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-Hans", "zh-Hant", "en")
QuestionType = Literal[
    "nps",
    "csat",
    "ces",
    "rating",
    "single_choice",
    "multiple_choice",
    "dropdown",
    "matrix",
    "ranking",
    "text",
    "number",
    "date",
    "contact",
]
ContactField = Literal["name", "phone", "email"]
CONTACT_FIELDS: tuple[ContactField, ...] = ("name", "phone", "email")
CHOICE_TYPES = {"single_choice", "multiple_choice", "dropdown", "ranking"}
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
HIDDEN_FIELD_NAMES = ("customer_id", "order_id", "store", "touchpoint", "channel")
# Hidden fields the service itself puts on personal links (a follow-up's ticket): no survey may declare one, so no
# respondent can send one.
RESERVED_HIDDEN_PREFIX = "cx_"
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")]


class LocalText(BaseModel):
    """A text in each supported language; at least one must be given."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    zh_hans: str | None = Field(default=None, alias="zh-Hans", max_length=2000)
    zh_hant: str | None = Field(default=None, alias="zh-Hant", max_length=2000)
    en: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_language(self) -> LocalText:
        if not (self.zh_hans or self.zh_hant or self.en):
            raise ValueError("give the text in at least one of zh-Hans, zh-Hant, en")
        return self

    def get(self, language: str) -> str:
        by_lang = {"zh-Hans": self.zh_hans, "zh-Hant": self.zh_hant, "en": self.en}
        fallbacks = [language, "zh-Hans", "zh-Hant", "en"]
        if language == "zh-Hant":
            fallbacks = ["zh-Hant", "zh-Hans", "en"]
        for lang in fallbacks:
            if value := by_lang.get(lang):
                return value
        return ""


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    label: LocalText


class Condition(BaseModel):
    """`question` (a question id) or `hidden` (a hidden field name) compared with `value`."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = None
    hidden: str | None = None
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "answered", "not_answered"]
    value: Any = None

    @model_validator(mode="after")
    def _one_source(self) -> Condition:
        if (self.question is None) == (self.hidden is None):
            raise ValueError("a condition names exactly one of `question` or `hidden`")
        return self


class ConditionGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: list[Condition | ConditionGroup] = Field(default_factory=list)
    any: list[Condition | ConditionGroup] = Field(default_factory=list)


class Validation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1, le=10000)
    pattern: str | None = None
    min_choices: int | None = Field(default=None, ge=0)
    max_choices: int | None = Field(default=None, ge=1)
    integer: bool = False


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    type: QuestionType
    title: LocalText
    description: LocalText | None = None
    required: bool = False
    choices: list[Choice] = Field(default_factory=list)
    allow_other: bool = Field(default=False, description="single/multiple choice: offer an 'other' with free text")
    rows: list[Choice] = Field(default_factory=list, description="matrix rows")
    columns: list[Choice] = Field(default_factory=list, description="matrix columns")
    scale: int = Field(default=5, ge=2, le=10, description="rating: number of stars")
    contact_fields: list[ContactField] = Field(default_factory=lambda: list(CONTACT_FIELDS))
    validation: Validation = Field(default_factory=Validation)
    display_if: ConditionGroup | None = None

    @model_validator(mode="after")
    def _shape(self) -> Question:
        if self.type in CHOICE_TYPES and not self.choices:
            raise ValueError(f"question {self.id}: a {self.type} question needs choices")
        if self.type == "matrix" and (not self.rows or not self.columns):
            raise ValueError(f"question {self.id}: a matrix question needs rows and columns")
        ids = [c.id for c in self.choices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"question {self.id}: choice ids must be unique")
        if self.allow_other and "other" in ids:
            raise ValueError(f"question {self.id}: 'other' is reserved when allow_other is set")
        if self.validation.pattern is not None:
            try:
                re.compile(self.validation.pattern)
            except re.error as exc:
                raise ValueError(f"question {self.id}: invalid pattern: {exc}") from exc
        return self


class Jump(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: ConditionGroup
    to: str = Field(description="page id, or 'end' to finish the survey")


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    title: LocalText | None = None
    questions: list[Question] = Field(min_length=1)
    display_if: ConditionGroup | None = None
    jumps: list[Jump] = Field(default_factory=list)


class Definition(BaseModel):
    """A survey definition; frozen into an immutable version when the survey is published."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"$id": "https://cx.local/schemas/survey-definition"})

    languages: list[Language] = Field(default_factory=lambda: list(LANGUAGES), min_length=1)
    default_language: Language = "zh-Hans"
    title: LocalText
    intro: LocalText | None = None
    thank_you: LocalText | None = None
    hidden_fields: list[Identifier] = Field(
        default_factory=lambda: list(HIDDEN_FIELD_NAMES),
        description="variables prefilled from the link query string (customer_id, order_id, store, ...)",
    )
    pages: list[Page] = Field(min_length=1, max_length=100)

    @field_validator("hidden_fields")
    @classmethod
    def _not_reserved(cls, names: list[str]) -> list[str]:
        reserved = [n for n in names if n.lower().startswith(RESERVED_HIDDEN_PREFIX)]
        if reserved:
            raise ValueError(f"{', '.join(reserved)}: names starting with {RESERVED_HIDDEN_PREFIX!r} are reserved")
        return names

    @model_validator(mode="after")
    def _references(self) -> Definition:
        qids: list[str] = [q.id for p in self.pages for q in p.questions]
        if len(set(qids)) != len(qids):
            raise ValueError("question ids must be unique across the survey")
        pids = [p.id for p in self.pages]
        if len(set(pids)) != len(pids):
            raise ValueError("page ids must be unique")
        seen: set[str] = set()
        for index, page in enumerate(self.pages):
            for cond in _conditions(page.display_if):
                self._check_ref(cond, seen, f"page {page.id}")
            page_qids = {q.id for q in page.questions}
            before = set(seen)
            for question in page.questions:
                for cond in _conditions(question.display_if):
                    self._check_ref(cond, before, f"question {question.id}")
                before.add(question.id)
            for jump in page.jumps:
                for cond in _conditions(jump.when):
                    self._check_ref(cond, seen | page_qids, f"jump on page {page.id}")
                if jump.to != "end" and jump.to not in pids[index + 1 :]:
                    raise ValueError(f"jump on page {page.id}: target {jump.to!r} must be a later page or 'end'")
            seen |= page_qids
        return self

    def _check_ref(self, cond: Condition, earlier: set[str], where: str) -> None:
        if cond.question is not None and cond.question not in earlier:
            raise ValueError(f"{where}: condition refers to {cond.question!r}, which is not an earlier question")
        if cond.hidden is not None and cond.hidden not in self.hidden_fields:
            raise ValueError(f"{where}: condition refers to unknown hidden field {cond.hidden!r}")

    def questions(self) -> dict[str, Question]:
        return {q.id: q for p in self.pages for q in p.questions}


ConditionGroup.model_rebuild()


def _conditions(group: ConditionGroup | None) -> list[Condition]:
    if group is None:
        return []
    out: list[Condition] = []
    for item in [*group.all, *group.any]:
        out.extend(_conditions(item) if isinstance(item, ConditionGroup) else [item])
    return out


# ---- evaluation -----------------------------------------------------------------------------------------------


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "answered":
        return actual not in (None, "", [], {})
    if op == "not_answered":
        return actual in (None, "", [], {})
    if actual is None:
        return op in ("ne", "not_in")
    if isinstance(actual, dict) and "choice" in actual:
        actual = actual["choice"]
    if isinstance(actual, dict) and "choices" in actual:
        actual = actual["choices"]
    try:
        if op == "eq":
            return bool(actual == expected or str(actual) == str(expected))
        if op == "ne":
            return not (actual == expected or str(actual) == str(expected))
        if op in ("gt", "gte", "lt", "lte"):
            a, b = float(actual), float(expected)
            return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
        if op == "in":
            return actual in (expected or []) or str(actual) in [str(e) for e in expected or []]
        if op == "not_in":
            return not (actual in (expected or []) or str(actual) in [str(e) for e in expected or []])
        if op == "contains":
            return expected in actual if isinstance(actual, (list, str)) else False
    except (TypeError, ValueError):
        return False
    return False


def evaluate(group: ConditionGroup | None, answers: dict[str, Any], hidden: dict[str, str]) -> bool:
    if group is None:
        return True

    def one(item: Condition | ConditionGroup) -> bool:
        if isinstance(item, ConditionGroup):
            return evaluate(item, answers, hidden)
        actual = answers.get(item.question) if item.question is not None else hidden.get(item.hidden or "")
        return _compare(item.op, actual, item.value)

    ok_all = all(one(i) for i in group.all)
    ok_any = any(one(i) for i in group.any) if group.any else True
    return ok_all and ok_any


def depends_on_page(question: Question, page: Page) -> bool:
    """True when the question's display condition looks at another answer on the same page (decided on submit)."""
    ids = {q.id for q in page.questions}
    return any(c.question in ids for c in _conditions(question.display_if))


def visible_path(
    definition: Definition, answers: dict[str, Any], hidden: dict[str, str]
) -> list[tuple[Page, list[Question]]]:
    """The pages a respondent walks through given these answers, with the questions shown on each."""
    path: list[tuple[Page, list[Question]]] = []
    index_of = {p.id: i for i, p in enumerate(definition.pages)}
    i = 0
    while i < len(definition.pages):
        page = definition.pages[i]
        if not evaluate(page.display_if, answers, hidden):
            i += 1
            continue
        shown = [q for q in page.questions if evaluate(q.display_if, answers, hidden)]
        path.append((page, shown))
        target = next((j.to for j in page.jumps if evaluate(j.when, answers, hidden)), None)
        if target == "end":
            break
        i = index_of[target] if target is not None else i + 1
    return path


class AnswerError(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9\- ]{5,19}$")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _number(q: Question, value: Any, err: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        err.append("must be a number")
        return None
    try:
        number = float(value)
    except ValueError:
        err.append("must be a number")
        return None
    if not math.isfinite(number):  # "nan", "inf", 1e999
        err.append("must be a finite number")
        return None
    if q.type in SCALES or q.type == "rating":
        low, high = SCALES.get(q.type, (1, q.scale))
        if number != int(number) or not low <= number <= high:
            err.append(f"must be a whole number from {low} to {high}")
            return None
        return number
    v = q.validation
    if v.integer and number != int(number):
        err.append("must be a whole number")
    if v.min is not None and number < v.min:
        err.append(f"must be at least {v.min:g}")
    if v.max is not None and number > v.max:
        err.append(f"must be at most {v.max:g}")
    return number


def _clean_one(q: Question, value: Any) -> tuple[Any, list[str]]:
    err: list[str] = []
    choice_ids = {c.id for c in q.choices}
    v = q.validation
    if q.type in ("nps", "csat", "ces", "rating", "number"):
        number = _number(q, value, err)
        return (int(number) if number is not None and number == int(number) else number), err
    if q.type in ("single_choice", "dropdown"):
        other = ""
        if isinstance(value, dict):
            other = str(value.get("other", "") or "")
            value = value.get("choice")
        if not isinstance(value, str) or (value not in choice_ids and not (q.allow_other and value == "other")):
            err.append("is not one of the choices")
            return None, err
        if value == "other":
            if not other.strip():
                err.append("other: give the other answer's text")
            return {"choice": "other", "other": other.strip()[:1000]}, err
        return value, err
    if q.type == "multiple_choice":
        other = ""
        if isinstance(value, dict):
            other = str(value.get("other", "") or "")
            value = value.get("choices")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            err.append("must be a list of choice ids")
            return None, err
        bad = [x for x in value if x not in choice_ids and not (q.allow_other and x == "other")]
        if bad:
            err.append(f"unknown choices: {', '.join(bad)}")
        picked = list(dict.fromkeys(value))
        if v.min_choices is not None and len(picked) < v.min_choices:
            err.append(f"pick at least {v.min_choices}")
        if v.max_choices is not None and len(picked) > v.max_choices:
            err.append(f"pick at most {v.max_choices}")
        if "other" in picked:
            if not other.strip():
                err.append("other: give the other answer's text")
            return {"choices": picked, "other": other.strip()[:1000]}, err
        return picked, err
    if q.type == "ranking":
        if not isinstance(value, list) or sorted(map(str, value)) != sorted(choice_ids):
            err.append("must rank every choice exactly once")
            return None, err
        return [str(x) for x in value], err
    if q.type == "matrix":
        rows, cols = {r.id for r in q.rows}, {c.id for c in q.columns}
        if not isinstance(value, dict):
            err.append("must map row ids to column ids")
            return None, err
        for row, col in value.items():
            if row not in rows:
                err.append(f"unknown row {row}")
            elif col not in cols:
                err.append(f"row {row}: unknown column {col}")
        if q.required and set(value) != rows:
            err.append("answer every row")
        return {str(k): str(x) for k, x in value.items()}, err
    if q.type == "text":
        if not isinstance(value, str):
            err.append("must be text")
            return None, err
        text = value.strip()
        max_len = v.max_length or 5000
        if len(text) > max_len:
            err.append(f"must be at most {max_len} characters")
        if v.min_length is not None and len(text) < v.min_length:
            err.append(f"must be at least {v.min_length} characters")
        if v.pattern is not None and not re.fullmatch(v.pattern, text):
            err.append("does not have the expected format")
        return text, err
    if q.type == "date":
        try:
            day = dt.date.fromisoformat(str(value))
        except ValueError:
            err.append("must be a date YYYY-MM-DD")
            return None, err
        return day.isoformat(), err
    # contact
    if not isinstance(value, dict):
        err.append("must be an object with name/phone/email")
        return None, err
    contact = {k: str(value.get(k, "") or "").strip()[:200] for k in q.contact_fields if value.get(k)}
    unknown = set(value) - set(q.contact_fields)
    if unknown:
        err.append(f"unknown contact fields: {', '.join(sorted(unknown))}")
    if "email" in contact and not _EMAIL.match(contact["email"]):
        err.append("email: not an e-mail address")
    if "phone" in contact and not _PHONE.match(contact["phone"]):
        err.append("phone: not a phone number")
    return contact, err


def hidden_errors(definition: Definition, hidden: dict[str, Any]) -> list[dict[str, str]]:
    """One error per hidden field the definition does not declare (`hidden.<name>`)."""
    declared = ", ".join(definition.hidden_fields) or "none"
    return [
        {"field": f"hidden.{k}", "message": f"unknown hidden field (declared: {declared})"}
        for k in hidden
        if k not in definition.hidden_fields
    ]


def clean_answers(
    definition: Definition, answers: dict[str, Any], hidden: dict[str, str], *, partial: bool = False
) -> dict[str, Any]:
    """Validate answers against a definition; returns the answers to keep (shown questions only).

    Raises AnswerError naming every bad field (`answers.<question id>`). With `partial`, required checks are skipped.
    """
    known = definition.questions()
    errors: list[dict[str, str]] = [
        {"field": f"answers.{qid}", "message": "unknown question"} for qid in answers if qid not in known
    ]
    errors += hidden_errors(definition, hidden)
    if errors:
        raise AnswerError(errors)
    # Clean every given answer first (logic evaluates cleaned values), then walk the visible path.
    cleaned: dict[str, Any] = {}
    for qid, value in answers.items():
        if _empty(value):
            continue
        result, errs = _clean_one(known[qid], value)
        errors += [{"field": f"answers.{qid}", "message": m} for m in errs]
        if not errs:
            cleaned[qid] = result
    if errors:
        raise AnswerError(errors)
    kept: dict[str, Any] = {}
    for _page, shown in visible_path(definition, cleaned, hidden):
        for q in shown:
            if q.id in cleaned:
                kept[q.id] = cleaned[q.id]
            elif q.required and not partial:
                errors.append({"field": f"answers.{q.id}", "message": "is required"})
    if errors:
        raise AnswerError(errors)
    return kept


def nps_category(score: int | None) -> str | None:
    if score is None:
        return None
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def scores(definition: Definition, answers: dict[str, Any]) -> dict[str, Any]:
    """NPS (0–10 with category), CSAT (1–5) and CES (1–7) from the first question of each kind that was answered."""
    out: dict[str, Any] = {"nps": None, "nps_category": None, "csat": None, "ces": None}
    for q in definition.questions().values():
        if q.type in SCALES and out[q.type] is None and q.id in answers:
            out[q.type] = answers[q.id]
    out["nps_category"] = nps_category(out["nps"])
    return out


def json_schema() -> dict[str, Any]:
    schema = Definition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "CX survey definition"
    return schema
