"""`cx-nlp` as the launcher and people call it: real subprocesses with the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CX_NLP = str(Path(sys.executable).with_name("cx-nlp"))


def run(env: dict[str, str], *args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CX_NLP, *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


@pytest.mark.parametrize(
    "command", [[], ["build-model"], ["serve-http"], ["serve-grpc"], ["serve"], ["info"], ["predict"], ["eval"]]
)
def test_help(nlp_cli_env, command):
    result = run(nlp_cli_env, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: cx-nlp" in result.stdout


def test_predict_sentiment_jsonl(nlp_cli_env):
    rows = [
        {"id": "a", "text": "排队等了四十分钟，服务员态度还很差。"},
        {"id": "b", "text": "Great service, thanks a lot!"},
        {"id": 3, "text": "價格合理，下次還會再來。"},
    ]
    stdin = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    result = run(nlp_cli_env, "predict", "--task", "sentiment", "--tiny", stdin=stdin)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "3"]
    assert [line["label"] for line in lines[:2]] == ["negative", "positive"]
    for line in lines:
        assert line["label"] in {"negative", "neutral", "positive"}
        assert 0.0 <= line["score"] <= 1.0
        assert abs(sum(line["probabilities"].values()) - 1.0) < 1e-3


@pytest.mark.parametrize(
    ("task", "text", "expected"),
    [
        ("language", "The delivery was late", "en"),
        ("intents", "I want to cancel my subscription, worst service ever", None),
        ("aspects", "排队等了一个小时", "服务/等待/排队时间"),
    ],
)
def test_predict_other_tasks(nlp_cli_env, task, text, expected):
    stdin = json.dumps({"id": "x", "text": text}, ensure_ascii=False) + "\n"
    result = run(nlp_cli_env, "predict", "--task", task, "--tiny", stdin=stdin)
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["id"] == "x" and "score" in line
    if expected is not None:
        assert line["label"] == expected
    else:
        assert line["label"] and line["intents"]


def test_predict_bad_line_names_it(nlp_cli_env):
    stdin = '{"id": "1", "text": "ok"}\n{"id": "2", "text": \n'
    result = run(nlp_cli_env, "predict", "--task", "sentiment", "--tiny", stdin=stdin)
    assert result.returncode != 0
    assert result.stdout == ""
    (message,) = result.stderr.strip().splitlines()
    assert "line 2" in message

    result = run(nlp_cli_env, "predict", "--task", "sentiment", "--tiny", stdin='{"id": "1", "text": ""}\n')
    assert result.returncode != 0 and "line 1" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_info_tiny(nlp_cli_env):
    result = run(nlp_cli_env, "info", "--tiny")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["model"]["name"] == "cx-tiny"
    assert info["settings"]["max_batch_size"] == 32
    assert info["settings"]["dtype"] == "float32"
    assert info["host"]["usable_cpus"] >= 1 and info["host"]["torch_threads"] >= 1
    assert isinstance(info["host"]["bf16_instructions"], bool)
    assert info["host"]["bf16_probe"] == {}  # the tiny model has no precision to choose
    assert info["host"]["bf16_packed_layers"] == 0


def test_eval_tiny(nlp_cli_env, tmp_path):
    data = tmp_path / "sentiment.jsonl"
    rows = [
        {"text": "服务很好，非常满意", "label": "positive"},
        {"text": "太差了，再也不来了", "label": "negative"},
        {"text": "Absolutely love it, thank you!", "label": "positive"},
        {"text": "Terrible, the worst experience", "label": "negative"},
    ]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = run(nlp_cli_env, "eval", "--task", "sentiment", "--data", str(data), "--tiny")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("task: sentiment") and "rows: 4" in lines[0]
    assert lines[1].split() == ["class", "precision", "recall", "f1", "support"]
    per_class = {parts[0]: parts[1:] for parts in (line.split() for line in lines[2:-1])}
    assert set(per_class) == {"negative", "positive"}  # classes without gold rows or predictions are left out
    assert all(len(v) == 4 and v[3] == "2" for v in per_class.values())
    summary = lines[-1].split()
    assert summary[0] == "accuracy" and summary[2] == "macro-F1"

    as_json = run(nlp_cli_env, "eval", "--task", "sentiment", "--data", str(data), "--tiny", "--json")
    report = json.loads(as_json.stdout)
    assert f"{report['accuracy']:.3f}" == summary[1] and f"{report['macro_f1']:.3f}" == summary[3]
    for label, values in per_class.items():
        m = report["per_class"][label]
        assert values[:3] == [f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "好", "label": "great"}) + "\n", encoding="utf-8")
    wrong = run(nlp_cli_env, "eval", "--task", "sentiment", "--data", str(bad), "--tiny")
    assert wrong.returncode != 0 and "great" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1

    missing = run(nlp_cli_env, "eval", "--task", "sentiment", "--data", str(tmp_path / "nope.jsonl"), "--tiny")
    assert missing.returncode != 0 and "nope.jsonl" in missing.stderr

    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(json.dumps({"text": "café", "label": "positive"}, ensure_ascii=False).encode("latin-1"))
    undecodable = run(nlp_cli_env, "eval", "--task", "sentiment", "--data", str(latin1), "--tiny")
    assert undecodable.returncode != 0 and len(undecodable.stderr.strip().splitlines()) == 1
    assert "not UTF-8" in undecodable.stderr

    languages = tmp_path / "languages.jsonl"
    languages.write_text(json.dumps({"text": "hello there", "label": "zh-TW"}) + "\n", encoding="utf-8")
    unknown = run(nlp_cli_env, "eval", "--task", "language", "--data", str(languages), "--tiny")
    assert unknown.returncode != 0 and "zh-TW" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1


def test_predict_echoes_ids_and_numbers_rows_without_one(nlp_cli_env):
    stdin = '{"id": 7, "text": "good"}\n{"id": null, "text": "bad"}\n{"text": "ok"}\n'
    result = run(nlp_cli_env, "predict", "--task", "sentiment", "--tiny", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["7", "2", "3"]


def test_serving_without_a_built_model_fails_with_one_line(nlp_cli_env, tmp_path):
    env = {**nlp_cli_env, "CX_NLP_MODEL": "default", "CX_NLP_MODEL_DIR": str(tmp_path / "empty")}
    for command in (["serve-http", "--port", "1"], ["predict", "--task", "sentiment"]):
        result = run(env, *command, stdin='{"id": "1", "text": "ok"}\n')
        assert result.returncode != 0
        (message,) = result.stderr.strip().splitlines()
        assert "build-model" in message
