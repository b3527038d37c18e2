"""What the host offers: CPUs this process may use, whether they compute bfloat16 natively, and so which precision
`auto` picks on CPU.

Kept free of heavy imports so settings can use it (the bfloat16 probe imports torch when it runs).
"""

from __future__ import annotations

import os
import statistics
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import structlog

log = structlog.stdlib.get_logger("cx_nlp.hardware")

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# bfloat16 must run the probe's matrix product at least this much faster than float32 to be picked: the rest of
# an encoder (attention, GELU, LayerNorm, pooling) gains less than its Linear layers, and the margin keeps a noisy
# host from flipping between the two.
BF16_MIN_SPEEDUP = 1.2
# One MiniLM/BERT-base sized feed-forward product: 16 texts x 64 tokens, 384 -> 1536.
PROBE_SHAPE = (1024, 384, 1536)
PROBE_ROUNDS = 7


CGROUP_ROOT = Path("/sys/fs/cgroup")
# CPU workers by default: one per usable CPU up to this many; beyond it each worker gets more intra-op threads.
MAX_AUTO_CPU_WORKERS = 4


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs this container's CFS quota allows (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` over
    `cpu.cfs_period_us`); None where there is no quota. A Pod with `limits.cpu: 2` sees every CPU of its node in
    its affinity mask, and sizing thread pools by that would oversubscribe the quota many times over."""
    try:
        quota, period = (root / "cpu.max").read_text(encoding="ascii").split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a container CPU quota (whole CPUs, at least 1)."""
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        cpus = max(1, os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return cpus if limit is None else max(1, min(cpus, int(limit)))


def default_cpu_workers() -> int:
    """Model workers on CPU: one per usable CPU, up to `MAX_AUTO_CPU_WORKERS`. Served traffic reaches a CPU model in
    small batches, where a forward pass costs mostly its fixed part (reading the weights, Python between the
    kernels) and a second intra-op thread barely helps, while a second worker doubles what runs: measured on 2
    cores, served embed with 16 callers 178-187 texts/s with two workers of one thread against 141-148 with one."""
    return max(1, min(usable_cpus(), MAX_AUTO_CPU_WORKERS))


def default_torch_threads(workers: int = 1) -> int:
    """Intra-op threads per model worker. One worker: every usable CPU but one, which is left to the HTTP server,
    the gRPC adapter and tokenisation in the same Pod (on small hosts more threads than free cores only make OpenMP
    threads wait for each other: on 2 cores, bf16 MiniLM 1 thread 53 texts/s, 2 threads 27). Several workers: the
    usable CPUs shared among them."""
    cpus = usable_cpus()
    return max(1, cpus - 1) if workers <= 1 else max(1, cpus // workers)


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


class Bf16Probe(NamedTuple):
    float32_ms: float
    bfloat16_ms: float
    threads: int

    @property
    def speedup(self) -> float:
        return self.float32_ms / self.bfloat16_ms if self.bfloat16_ms > 0 else 0.0


def probe_bf16_matmul(threads: int) -> Bf16Probe:
    """Median time of one encoder-sized Linear layer in float32 and in bfloat16, interleaved, at `threads` intra-op
    threads (~0.1-0.5 s). The CPU flags alone do not tell: a virtual machine may report AVX512-BF16 but hide AMX,
    and there oneDNN's AVX512-BF16 kernels ran MiniLM at 0.7x float32 (measured, Xeon model 207 without AMX)."""
    import torch

    from cx_nlp.models.onednn import PackedBf16Linear, packing_available

    rows, inner, outer = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    layers: dict[torch.dtype, tuple[torch.nn.Module, torch.Tensor]] = {}
    for dtype in (torch.float32, torch.bfloat16):
        linear = torch.nn.Linear(inner, outer).to(dtype)
        # bfloat16 as the model's layers will run it (cx_nlp.models.onednn)
        layer: torch.nn.Module = PackedBf16Linear(linear) if dtype == torch.bfloat16 and packing_available() else linear
        layers[dtype] = (layer, torch.randn(rows, inner, generator=generator).to(dtype))
    times: dict[torch.dtype, list[float]] = {dtype: [] for dtype in layers}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for layer, x in layers.values():  # warm-up: oneDNN builds its kernels on the first call
                layer(x)
            for _ in range(PROBE_ROUNDS):
                for dtype, (layer, x) in layers.items():
                    start = time.perf_counter()
                    layer(x)
                    times[dtype].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return Bf16Probe(
        float32_ms=statistics.median(times[torch.float32]) * 1000,
        bfloat16_ms=statistics.median(times[torch.bfloat16]) * 1000,
        threads=threads,
    )


_probes: dict[int, Bf16Probe] = {}  # thread count -> the probe run at it in this process


def bf16_probe(threads: int) -> Bf16Probe:
    """`probe_bf16_matmul(threads)`, run once per process and thread count (logged)."""
    probe = _probes.get(threads)
    if probe is None:
        probe = _probes[threads] = probe_bf16_matmul(threads)
        log.info(
            "cpu_bf16_probe",
            float32_ms=round(probe.float32_ms, 3),
            bfloat16_ms=round(probe.bfloat16_ms, 3),
            speedup=round(probe.speedup, 2),
            threads=threads,
            chosen="bfloat16" if probe.speedup >= BF16_MIN_SPEEDUP else "float32",
        )
    return probe


def probes_run() -> dict[int, Bf16Probe]:
    """The bfloat16 probes this process has run, by thread count (for `cx-nlp info`)."""
    return dict(_probes)


def bf16_is_faster(threads: int) -> bool:
    """Whether bfloat16 beats float32 by `BF16_MIN_SPEEDUP` on this host at `threads` threads."""
    return bf16_probe(threads).speedup >= BF16_MIN_SPEEDUP


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def auto_cpu_dtype() -> str:
    """`auto` on CPU: bfloat16 where the CPU has bfloat16 instructions and a probe finds them faster than float32
    (`bf16_is_faster`), else float32. int8 (`cx_nlp.models.quantize`) is opt-in: it keeps the labels and cosine
    >= 0.99, but its activation scale is set per call, so a text's scores move by up to ~0.01 with the texts it is
    batched with, and it gains only ~1.4-1.5x on CPUs with VNNI and no usable bfloat16 (measured with
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI, and on a host with AVX512-BF16 but no AMX), ~1.3x and less exact on plain
    AVX2."""
    if not cpu_has_native_bf16():
        return "float32"
    return "bfloat16" if bf16_is_faster(_torch_threads()) else "float32"
