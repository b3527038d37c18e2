"""`python -m bench` runs every benchmark; `python -m bench nlp --quick` runs one with its arguments.

A benchmark is a subpackage `bench/<name>/` with a module `run.py` exposing `main(argv: list[str]) -> int`; it
records its figures with `bench.report.write_result`, and every run rewrites `bench/REPORT.md` from `bench/results/`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

# `make bench` (every benchmark, no arguments) gives each one these arguments, sized so that the whole run stays
# within 20 minutes on 2 cores; `python -m bench <name>` alone runs that benchmark's own full-size defaults.
SUITE_ARGS: dict[str, list[str]] = {
    "ingest": ["--rounds", "3", "--pipeline-rounds", "1", "--pipeline-items", "1000"],
    "time_to_alert": ["--seconds", "40", "--warmup", "10", "--nlp-seconds", "30"],
    "survey_submit": ["--rounds", "6"],
    "nlp": ["--texts", "256"],
    "file_import": ["--rows", "200000"],
}


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.ispkg and (here / m.name / "run.py").is_file())


def main(argv: list[str]) -> int:
    names = available()
    chosen = [a for a in argv if a in names]
    rest = [a for a in argv if a not in names]
    if any(a in ("-h", "--help") for a in rest) and not chosen:
        print(f"usage: python -m bench [{'|'.join(names)} ...] [benchmark args]")
        return 0
    from bench.report import record_elapsed, write_report

    status = 0
    suite = not chosen and not rest
    for name in chosen or names:
        args = SUITE_ARGS.get(name, []) if suite else rest
        print(f"== bench {name} {' '.join(args)}".rstrip() + " ==", flush=True)
        module = importlib.import_module(f"bench.{name}.run")
        started = time.monotonic()
        status = max(status, int(module.main(args) or 0))
        record_elapsed(name, time.monotonic() - started)

    print(f"report: {write_report()}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
