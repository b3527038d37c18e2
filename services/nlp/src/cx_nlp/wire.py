"""What travels between the gRPC adapter and the BentoML workers (JSON), and its mapping onto cx.nlp.v1."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import numpy as np

from cx.nlp.v1 import nlp_pb2
from cx_nlp.models.api import Prediction

CODEBOOK_UNKNOWN = "codebook_unknown"

TASK_NAMES: dict[int, str] = {
    nlp_pb2.TASK_LANGUAGE: "language",
    nlp_pb2.TASK_SENTIMENT: "sentiment",
    nlp_pb2.TASK_ASPECTS: "aspects",
    nlp_pb2.TASK_INTENTS: "intents",
    nlp_pb2.TASK_KEYWORDS: "keywords",
    nlp_pb2.TASK_NEEDS: "needs",
}
DEFAULT_TASKS = frozenset({"language", "sentiment", "intents", "keywords", "needs"})

_SENTIMENT = {
    "negative": nlp_pb2.SENTIMENT_NEGATIVE,
    "neutral": nlp_pb2.SENTIMENT_NEUTRAL,
    "positive": nlp_pb2.SENTIMENT_POSITIVE,
}
_SENTIMENT_ORDER = ("negative", "neutral", "positive")
_NEEDS = {
    "pain": nlp_pb2.NEED_LAYER_PAIN_POINT,
    "itch": nlp_pb2.NEED_LAYER_ITCH_POINT,
    "delight": nlp_pb2.NEED_LAYER_DELIGHT_POINT,
}


def prediction_to_json(prediction: Prediction, *, truncated: bool = False) -> dict[str, Any]:
    out = dataclasses.asdict(prediction)
    out["truncated"] = truncated
    return out


def sentiment_label(probabilities: tuple[float, float, float] | list[float]) -> tuple[str, float]:
    i = int(np.argmax(np.asarray(probabilities)))
    return _SENTIMENT_ORDER[i], float(probabilities[i])


def result_to_proto(
    data: dict[str, Any], *, index: int, item_id: str, tasks: frozenset[str], truncated: bool
) -> nlp_pb2.AnalysisResult:
    result = nlp_pb2.AnalysisResult(id=item_id, index=index, truncated=truncated or bool(data.get("truncated")))
    if "language" in tasks:
        result.language.language = data.get("language") or "other"
        result.language.confidence = float(data.get("language_confidence") or 0.0)
    if "sentiment" in tasks and data.get("sentiment") is not None:
        probs = [float(p) for p in data["sentiment"]]
        label, score = sentiment_label(probs)
        result.sentiment.label = _SENTIMENT[label]
        result.sentiment.score = score
        result.sentiment.probabilities.negative = probs[0]
        result.sentiment.probabilities.neutral = probs[1]
        result.sentiment.probabilities.positive = probs[2]
    if "aspects" in tasks:
        for hit in data.get("aspects") or []:
            result.aspects.append(
                nlp_pb2.AspectHit(
                    path=list(hit["path"]),
                    node_id=hit["node_id"],
                    opinion=hit.get("opinion", ""),
                    span=nlp_pb2.Span(start=int(hit["start"]), end=int(hit["end"])),
                    polarity=_SENTIMENT.get(hit.get("polarity", ""), nlp_pb2.SENTIMENT_UNSPECIFIED),
                    confidence=float(hit.get("confidence", 0.0)),
                    matched_by=hit.get("matched_by", ""),
                )
            )
        result.unmatched = bool(data.get("unmatched"))
    if "intents" in tasks:
        intents = sorted((data.get("intents") or {}).items(), key=lambda kv: -kv[1])
        result.intents.extend(nlp_pb2.IntentScore(intent=k, score=float(v)) for k, v in intents)
    if "keywords" in tasks:
        result.keywords.extend(nlp_pb2.Keyword(text=str(t), weight=float(w)) for t, w in data.get("keywords") or [])
    if "needs" in tasks and data.get("need_layer"):
        result.need_layer = _NEEDS.get(data["need_layer"], nlp_pb2.NEED_LAYER_UNSPECIFIED)
        result.need_confidence = float(data.get("need_confidence") or 0.0)
    return result


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(data: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data), dtype="<f4")
