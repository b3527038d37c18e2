"""`python -m bench` runs every benchmark; `python -m bench nlp --quick` runs one with its arguments.

A benchmark is a subpackage `bench/<name>/` with a module `run.py` exposing `main(argv: list[str]) -> int`; it
records its figures with `bench.report.write_result`, and every run rewrites `bench/REPORT.md` from `bench/results/`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


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
    status = 0
    for name in chosen or names:
        print(f"== bench {name} ==", flush=True)
        module = importlib.import_module(f"bench.{name}.run")
        status = max(status, int(module.main(rest) or 0))
    from bench.report import write_report

    print(f"report: {write_report()}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
