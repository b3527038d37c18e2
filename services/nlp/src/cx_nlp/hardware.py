"""What the host offers: CPUs this process may use, whether they compute bfloat16 natively, and so which precision
`auto` picks on CPU.

Kept free of heavy imports so settings can use it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_torch_threads() -> int:
    """Intra-op threads for one model worker: every usable CPU but one, which is left to the HTTP server, the gRPC
    adapter and tokenisation in the same Pod. On small hosts more threads than free cores only make OpenMP
    threads wait for each other (measured on 2 cores: bf16 MiniLM 1 thread 53 texts/s, 2 threads 27 texts/s)."""
    return max(1, usable_cpus() - 1)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX-BF16), where oneDNN runs
    bfloat16 matrix products at 2-4x the float32 speed; elsewhere bfloat16 is emulated and slower."""
    return bool(BF16_FLAGS & cpu_flags())


def auto_cpu_dtype() -> str:
    """`auto` on CPU: bfloat16 where it is native, else float32. int8 (`cx_nlp.models.quantize`) is opt-in: it keeps
    the labels and cosine >= 0.99, but its activation scale is set per call, so a text's scores move by up to ~0.01
    with the texts it is batched with, and it gains only ~1.5x on CPUs with VNNI and no bfloat16 (measured with
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI), ~1.3x and less exact on plain AVX2."""
    return "bfloat16" if cpu_has_native_bf16() else "float32"
