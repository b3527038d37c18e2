"""`cx-nlp`: build the model, serve it (HTTP, gRPC, both), and use it in-process (info, predict, eval).

Launcher contract (deploy/local calls exactly these):
  cx-nlp build-model --if-missing
  cx-nlp serve-http --host 127.0.0.1 --port 3000
  cx-nlp serve-grpc --host 127.0.0.1 --port 50051 --upstream http://127.0.0.1:3000
  cx-nlp serve
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from cx_common.logging import configure_logging
from cx_nlp import hardware
from cx_nlp.settings import NlpSettings, apply_env, get_settings

PREDICT_TASKS = ("sentiment", "aspects", "intents", "language", "keywords", "needs")


class CliError(Exception):
    """A failure reported as one line on stderr with exit status 1 (2 for usage errors)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", type=Path, help="model directory (env CX_NLP_MODEL_DIR)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny in-code test model (env CX_NLP_MODEL=tiny)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="env CX_NLP_DEVICE")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16", "int8"], help="env CX_NLP_DTYPE")


def _apply_model_flags(args: argparse.Namespace) -> NlpSettings:
    apply_env(
        model_dir=getattr(args, "model_dir", None),
        model="tiny" if getattr(args, "tiny", False) else None,
        device=getattr(args, "device", None),
        dtype=getattr(args, "dtype", None),
    )
    return get_settings()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cx-nlp", description="CX NLP service: models, HTTP + gRPC serving, tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("build-model", help="build the default model into the model directory")
    p.add_argument("--model-dir", type=Path, help="target directory (env CX_NLP_MODEL_DIR, default .cx/models/default)")
    p.add_argument("--if-missing", action="store_true", help="do nothing when a built model is already there")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("serve-http", help="the BentoML HTTP service (adaptive batching); /readyz after warm-up")
    p.add_argument("--host", help="bind address (env CX_NLP_HTTP_HOST)")
    p.add_argument("--port", type=int, help="port (env CX_NLP_HTTP_PORT, default 3000)")
    p.add_argument("--workers", type=int, help="BentoML workers (env CX_NLP_WORKERS; default 1 per CPU host/GPU)")
    _model_flags(p)

    p = sub.add_parser("serve-grpc", help="the gRPC adapter (cx.nlp.v1) in front of the HTTP service")
    p.add_argument("--host", help="bind address (env CX_NLP_GRPC_HOST)")
    p.add_argument("--port", type=int, help="port (env CX_NLP_GRPC_PORT, default 50051)")
    p.add_argument("--upstream", help="URL of the HTTP service (env CX_NLP_UPSTREAM_URL)")
    p.add_argument("--metrics-port", type=int, help="Prometheus port of the adapter (env CX_NLP_GRPC_METRICS_PORT)")

    p = sub.add_parser("serve", help="HTTP service + gRPC adapter in one command")
    p.add_argument("--host", default=None, help="bind address of both (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="default 3000")
    p.add_argument("--grpc-port", type=int, help="default 50051")
    p.add_argument("--metrics-port", type=int, help="Prometheus port of the adapter")
    _model_flags(p)

    p = sub.add_parser("info", help="print the settings and the model's info as JSON (loads the model in-process)")
    _model_flags(p)

    p = sub.add_parser(
        "predict",
        help='JSONL {"id","text"} on stdin -> JSONL {"id","label","score",...} on stdout (in-process)',
    )
    p.add_argument("--task", required=True, choices=PREDICT_TASKS)
    p.add_argument("--codebook", type=Path, help="JSON list of codebook nodes for --task aspects (default: demo)")
    p.add_argument("--primary-language", default="zh-Hans")
    p.add_argument("--batch-size", type=int, default=32)
    _model_flags(p)

    p = sub.add_parser("eval", help="evaluate a task on a labelled JSONL file and print the report (in-process)")
    p.add_argument("--task", required=True, choices=PREDICT_TASKS)
    p.add_argument("--data", required=True, type=Path, help='JSONL rows, e.g. {"text": ..., "label": ...}')
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _model_flags(p)
    return parser


ONE_SHOT = frozenset({"build-model", "info", "predict", "eval"})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "build-model": cmd_build_model,
        "serve-http": cmd_serve_http,
        "serve-grpc": cmd_serve_grpc,
        "serve": cmd_serve,
        "info": cmd_info,
        "predict": cmd_predict,
        "eval": cmd_eval,
    }
    if args.command in ONE_SHOT:
        # stdout carries the command's output (JSON, JSONL, a report): logs go to stderr, and only warnings, so a
        # bad input still gets its one-line reason there
        configure_logging("cx-nlp", level="WARNING", json=False)
    try:
        return handlers[args.command](args)
    except CliError as exc:
        print(f"cx-nlp {args.command}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130


# -- build-model -------------------------------------------------------------------------------------------
def cmd_build_model(args: argparse.Namespace) -> int:
    settings = _apply_model_flags(args)
    out_dir = settings.resolved_model_dir()
    try:
        from cx_nlp.models.build import build_default_model, model_is_built
    except ImportError as exc:
        raise CliError(f"model builder unavailable: {exc}") from exc
    if args.if_missing and model_is_built(out_dir):
        print(f"cx-nlp: default model already built in {out_dir}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    try:
        build_default_model(out_dir, progress=not args.no_progress)
    except Exception as exc:
        raise CliError(f"failed: {exc.__class__.__name__}: {exc}".splitlines()[0]) from exc
    print(f"cx-nlp: default model built in {out_dir} ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    return 0


# -- serving -----------------------------------------------------------------------------------------------
def _bentoml_env(settings: NlpSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    env.setdefault("BENTOML_HOME", str(Path.cwd() / ".cx" / "bentoml"))
    # BentoML imports the service in fresh processes: make the resolved model dir explicit for them.
    env["CX_NLP_MODEL_DIR"] = str(settings.resolved_model_dir())
    return env


def http_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "cx_nlp.service:NlpModel",
        "--host",
        host,
        "--port",
        str(port),
    ]


def cmd_serve_http(args: argparse.Namespace) -> int:
    apply_env(workers=args.workers)
    settings = _apply_model_flags(args)
    _check_model(settings)
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    env = _bentoml_env(settings)
    sys.stdout.flush()
    sys.stderr.flush()
    # exec: the launcher's signals reach BentoML's arbiter directly, which drains its workers on SIGTERM.
    os.execve(sys.executable, http_command(host, port), env)  # noqa: S606
    return 0  # pragma: no cover


def _check_model(settings: NlpSettings) -> None:
    if settings.model == "tiny" or settings.pipeline_factory:
        return
    path = settings.resolved_model_dir()
    try:
        from cx_nlp.models.build import model_is_built

        built = model_is_built(path)
    except ImportError:
        built = path.exists()
    if not built:
        raise CliError(f"no built model in {path}; run `cx-nlp build-model` first (or use --tiny)")


def cmd_serve_grpc(args: argparse.Namespace) -> int:
    apply_env(grpc_metrics_port=args.metrics_port)
    settings = get_settings()
    from cx_nlp.grpc_server import run_grpc

    run_grpc(
        settings,
        upstream_url=args.upstream or settings.upstream_url,
        host=args.host or settings.grpc_host,
        port=args.port or settings.grpc_port,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    apply_env(grpc_metrics_port=args.metrics_port)
    settings = _apply_model_flags(args)
    _check_model(settings)
    host = args.host or settings.http_host
    http_port = args.http_port or settings.http_port
    grpc_port = args.grpc_port or settings.grpc_port
    child = subprocess.Popen(http_command(host, http_port), env=_bentoml_env(settings))  # noqa: S603
    try:
        from cx_nlp.grpc_server import run_grpc

        run_grpc(
            settings, upstream_url=f"http://{host}:{http_port}", host=args.host or settings.grpc_host, port=grpc_port
        )
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=settings.shutdown_grace_s + 15)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


# -- in-process tools --------------------------------------------------------------------------------------
def _load(settings: NlpSettings) -> Any:
    from cx_nlp.runtime import ModelNotBuiltError, load_configured_pipeline

    try:
        pipeline, _ = load_configured_pipeline(settings)
    except ModelNotBuiltError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:
        raise CliError(f"cannot load the model: {exc.__class__.__name__}: {exc}".splitlines()[0]) from exc
    return pipeline


def cmd_info(args: argparse.Namespace) -> int:
    settings = _apply_model_flags(args)
    pipeline = _load(settings)
    payload = {
        "model": {
            "name": pipeline.name,
            "version": pipeline.version,
            "device": pipeline.device,
            "dtype": pipeline.dtype,
            "embedding_dimension": pipeline.embedding_dim,
            "info": pipeline.info(),
        },
        "settings": {
            "model": settings.model,
            "model_dir": str(settings.resolved_model_dir()),
            "device": settings.device,
            "dtype": settings.resolved_dtype(),
            "workers": settings.resolved_workers(),
            "max_batch_size": settings.max_batch_size,
            "max_latency_ms": settings.max_latency_ms,
            "max_items_per_request": settings.max_items_per_request,
            "max_text_length": settings.max_text_length,
            "max_concurrent_requests": settings.max_concurrent_requests,
        },
        "host": {
            "usable_cpus": hardware.usable_cpus(),
            "torch_threads": settings.resolved_torch_threads(),
            "bf16_instructions": hardware.cpu_has_native_bf16(),
            # What `dtype=auto` measured before it chose (empty when it had nothing to probe).
            "bf16_probe": {
                str(threads): {
                    "float32_ms": round(p.float32_ms, 3),
                    "bfloat16_ms": round(p.bfloat16_ms, 3),
                    "speedup": round(p.speedup, 2),
                }
                for threads, p in hardware.probes_run().items()
            },
            "bf16_packed_layers": _packed_layers(),
        },
    }
    print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    return 0


def _packed_layers() -> int:
    """bfloat16 Linear layers running with oneDNN-packed weights (`cx_nlp.models.onednn`); read from the module only
    if the model imported it, so the tiny model still never imports torch."""
    onednn = sys.modules.get("cx_nlp.models.onednn")
    return int(onednn.packed_layers()) if onednn is not None else 0


def _read_jsonl(stream: TextIO, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"{source} line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise CliError(f"{source} line {number}: expected a JSON object")
        yield number, row


def _predict_rows(rows: list[tuple[int, dict[str, Any]]], max_len: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for number, row in rows:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise CliError(f"stdin line {number}: 'text' must be a non-empty string")
        row_id = row.get("id")
        out.append((str(number) if row_id is None else str(row_id), text[:max_len]))
    return out


def _prediction_line(task: str, row_id: str, prediction: Any, truncated: bool) -> dict[str, Any]:
    from cx_nlp.wire import sentiment_label

    line: dict[str, Any] = {"id": row_id}
    if task == "sentiment":
        probs = list(prediction.sentiment or (0.0, 1.0, 0.0))
        label, score = sentiment_label(probs)
        line |= {
            "label": label,
            "score": round(score, 6),
            "probabilities": dict(zip(("negative", "neutral", "positive"), probs, strict=True)),
        }
    elif task == "language":
        line |= {"label": prediction.language, "score": round(float(prediction.language_confidence), 6)}
    elif task == "intents":
        intents = sorted(prediction.intents.items(), key=lambda kv: -kv[1])
        label, score = intents[0] if intents else ("", 0.0)
        line |= {
            "label": label,
            "score": round(float(score), 6),
            "intents": {k: round(float(v), 6) for k, v in intents},
        }
    elif task == "aspects":
        hits = sorted(prediction.aspects, key=lambda h: -h.confidence)
        line |= {
            "label": "/".join(hits[0].path) if hits else "",
            "score": round(float(hits[0].confidence), 6) if hits else 0.0,
            "unmatched": bool(prediction.unmatched),
            "aspects": [
                {
                    "path": h.path,
                    "node_id": h.node_id,
                    "opinion": h.opinion,
                    "span": [h.start, h.end],
                    "polarity": h.polarity,
                    "confidence": round(float(h.confidence), 6),
                }
                for h in hits
            ],
        }
    elif task == "keywords":
        kws = list(prediction.keywords)
        line |= {
            "label": kws[0][0] if kws else "",
            "score": round(float(kws[0][1]), 6) if kws else 0.0,
            "keywords": [[k, round(float(w), 6)] for k, w in kws],
        }
    elif task == "needs":
        line |= {"label": prediction.need_layer or "", "score": round(float(prediction.need_confidence), 6)}
    if truncated:
        line["truncated"] = True
    return line


def cmd_predict(args: argparse.Namespace) -> int:
    settings = _apply_model_flags(args)
    rows = list(_read_jsonl(sys.stdin, "stdin"))
    items = _predict_rows(rows, settings.max_text_length)
    truncated = [len(str(row.get("text", ""))) > settings.max_text_length for _, row in rows]
    pipeline = _load(settings)
    codebook = None
    if args.task == "aspects":
        from cx_nlp.codebooks import DEMO_CODEBOOK, CodebookError, node_to_dict, to_specs, validate_nodes

        nodes = DEMO_CODEBOOK
        if args.codebook is not None:
            try:
                nodes = [node_to_dict(n) for n in json.loads(args.codebook.read_text(encoding="utf-8"))]
                validate_nodes(nodes, max_nodes=settings.max_codebook_nodes)
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                msg = str(exc) if isinstance(exc, CodebookError) else f"{exc.__class__.__name__}: {exc}"
                raise CliError(f"--codebook {args.codebook}: {msg}") from exc
        codebook = pipeline.compile_codebook(to_specs(nodes), args.primary_language)
    out = sys.stdout
    step = max(1, args.batch_size)
    for start in range(0, len(items), step):
        chunk = items[start : start + step]
        predictions = pipeline.analyze([t for _, t in chunk], frozenset({args.task}), codebook)
        for offset, ((row_id, _), prediction) in enumerate(zip(chunk, predictions, strict=True)):
            line = _prediction_line(args.task, row_id, prediction, truncated[start + offset])
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        out.flush()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    settings = _apply_model_flags(args)
    try:
        with args.data.open(encoding="utf-8") as stream:
            rows = [row for _, row in _read_jsonl(stream, str(args.data))]
    except OSError as exc:
        raise CliError(f"cannot read {args.data}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"{args.data}: not UTF-8 text (byte {exc.start})") from exc
    if not rows:
        raise CliError(f"{args.data}: no rows")
    try:
        from cx_nlp.evaluation import evaluate, format_report
    except ImportError as exc:
        raise CliError(f"evaluation unavailable: {exc}") from exc
    pipeline = _load(settings)
    try:
        report = evaluate(pipeline, args.task, rows)
    except (ValueError, KeyError) as exc:
        raise CliError(f"{args.data}: {exc}") from exc
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
