"""int8 on CPU: every Linear layer of a transformer with int8 weights and int8 activations.

Plain dynamic quantisation (`torch.ao.quantization.quantize_dynamic`) moved MiniLM's sentence vectors too far to be
usable (cosine to float32 down to 0.82 on the benchmark's texts). Four things bring it back to within 0.99:

- **8-bit activations.** PyTorch's x86/fbgemm kernels quantise activations to 7 bits (`reduce_range`, to avoid an
  overflow of AVX2's 16-bit intermediate sums); oneDNN's kernels have no such overflow and take all 8 bits, so the
  layers are packed for oneDNN where this PyTorch build has it.
- **One weight scale per output channel** instead of one per matrix.
- **Smoothing** (SmoothQuant, Xiao et al. 2023): a few input channels of a Linear carry values 10-100x the others
  (after GELU, and after layer norm in BERT-like models), and one activation scale per call has to cover them, so
  every other channel keeps only a few levels. Input channel *j* is divided by
  `s_j = max|x_j|^alpha / max|W_j|^(1 - alpha)` and weight column *j* multiplied by it: the same product in exact
  arithmetic, with the outliers moved from the activations into the (per-channel quantised) weights. `max|x_j|`
  comes from a calibration pass over texts that ship with the package (`calibration_texts`): training-style
  sentences and dev rows, never the test sets or the benchmark's texts.
- **The most sensitive layer stays in floating point**: one feed-forward down-projection, chosen on the calibration
  texts (`quantize_int8`); in bfloat16 where this CPU runs bfloat16 faster than float32 (`auto_cpu_dtype`), else in
  float32. (In float32 that one layer took a tenth of the int8 encoder's time on AVX512-BF16: 108 of 980 ms.)

The query, key and value projections of each self-attention block run as one int8 product with the three weight
matrices stacked (`cx_nlp.models.layers`), so their shared input is smoothed and quantised once, not three times:
7-11 % faster on the MiniLM path, and the cosine minimum on the 384 benchmark texts moved from 0.9933 to 0.9943.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import nn

from cx_nlp.hardware import auto_cpu_dtype
from cx_nlp.models.layers import fuse_attention_projections, replace_module

ALPHA = 0.7  # migration strength: 0 = no smoothing, 1 = all of the activation range moved into the weights
FLOAT_LAYERS = 1  # feed-forward down-projections kept in floating point, the most sensitive first (see quantize_int8)
ONEDNN = "onednn"


class SmoothedInt8Linear(nn.Module):
    """`y = x W^T + b` with int8 weights (per output channel) and activations quantised per call (8 bits on
    oneDNN), the input divided by the smoothing factors first."""

    def __init__(self, linear: nn.Linear, smooth: torch.Tensor | None, engine: str) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach().float()
        if smooth is not None:
            weight = weight * smooth[None, :]
            self.register_buffer("inv_smooth", (1.0 / smooth).float())
        else:
            self.inv_smooth: torch.Tensor | None = None
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-8).double()
        zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():
            # torch's quantized tensors are deprecated in favour of torchao, whose int8 kernels need torch.compile
            # to be fast; these eager oneDNN ones are what runs fast without it.
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
            qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        with quantized_engine(engine):
            self.packed = torch.ops.quantized.linear_prepack(qweight, bias)
        # fbgemm/x86 kernels need 7-bit activations (their AVX2 path would overflow); oneDNN and qnnpack take 8.
        self.reduce_range = engine in ("fbgemm", "x86")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        if self.inv_smooth is not None:
            x = x * self.inv_smooth
        y: torch.Tensor = torch.ops.quantized.linear_dynamic(x, self.packed, reduce_range=self.reduce_range)
        return y.to(dtype)

    def extra_repr(self) -> str:
        smoothed = self.inv_smooth is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, smoothed={smoothed}"


class Bf16Linear(nn.Module):
    """A Linear computed in bfloat16 (its weights stored so); input and output in the caller's dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)


def preferred_engine() -> str:
    engines = torch.backends.quantized.supported_engines
    return ONEDNN if ONEDNN in engines else str(torch.backends.quantized.engine)


@contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Weights are packed for the engine that is current when they are packed; a packed layer then runs on that
    engine whatever is current later, so the switch only has to last for the packing."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def input_absmax(model: nn.Module, calibrate: Callable[[], Any]) -> tuple[dict[str, torch.Tensor], Any]:
    """max |x_j| per input channel of every Linear over what `calibrate()` runs through `model`, and what
    `calibrate()` returned."""
    stats: dict[str, torch.Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):

            def record(_: nn.Module, inputs: tuple[torch.Tensor, ...], __: Any, name: str = name) -> None:
                x = inputs[0].detach().float()
                seen = x.abs().reshape(-1, x.shape[-1]).amax(dim=0)
                stats[name] = torch.maximum(stats[name], seen) if name in stats else seen

            hooks.append(module.register_forward_hook(record))
    try:
        output = calibrate()
    finally:
        for hook in hooks:
            hook.remove()
    return stats, output


def smoothing_factors(x_absmax: torch.Tensor, weight: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    w_absmax = weight.detach().float().abs().amax(dim=0).clamp(min=1e-5)
    return (x_absmax.clamp(min=1e-5) ** alpha / w_absmax ** (1 - alpha)).clamp(min=1e-5)


def output_error(reference: Any, output: Any) -> float:
    """Mean relative L2 distance between the rows of two calibration outputs (sentence vectors, probabilities)."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    out = np.asarray(output, dtype=np.float64).reshape(len(output), -1)
    return float(np.mean(np.linalg.norm(out - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)))


def quantize_int8(
    model: nn.Module,
    calibrate: Callable[[], Any] | None,
    *,
    alpha: float = ALPHA,
    float_layers: int = FLOAT_LAYERS,
    float_dtype: str | None = None,
) -> nn.Module:
    """Replace the Linear layers of `model` (float32, eval mode) in place and return it. `calibrate()` runs the
    calibration texts through the model and returns its output (sentence vectors, probabilities); None: no
    smoothing and no layer kept in float32.

    Sensitivity: the error of the whole model comes mostly from one feed-forward down-projection (for MiniLM the
    first block's, whose input after GELU is the most heavy-tailed; measured on unseen English sentences it moves the
    cosine minimum from 0.982 to 0.991), and which one it is depends on the model. So each down-projection
    (a Linear with more inputs than outputs) is tried back in float32, and the `float_layers` that cut the
    calibration output's error most stay in floating point: `float_dtype` (bfloat16 or float32; None: bfloat16
    where this CPU runs it faster, `auto_cpu_dtype`)."""
    stats, reference = input_absmax(model, calibrate) if calibrate is not None else ({}, None)
    engine = preferred_engine()
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}

    def int8(linear: nn.Linear, names: list[str]) -> SmoothedInt8Linear:
        seen = [stats[n] for n in names if n in stats]  # layers fed the same input: one smoothing for all
        x_absmax = torch.stack(seen).amax(dim=0) if len(seen) == len(names) else None
        smooth = smoothing_factors(x_absmax, linear.weight, alpha) if x_absmax is not None and alpha > 0 else None
        return SmoothedInt8Linear(linear, smooth, engine)

    fused = set(fuse_attention_projections(model, int8))
    for name, linear in linears.items():
        if name not in fused:
            replace_module(model, name, int8(linear, [name]))
    if calibrate is None or reference is None:
        return model
    candidates = [name for name, m in linears.items() if m.in_features > m.out_features]
    kept: list[str] = []
    for _ in range(min(float_layers, len(candidates))):
        errors = {}
        for name in candidates:
            quantized = model.get_submodule(name)
            replace_module(model, name, linears[name])
            errors[name] = output_error(reference, calibrate())
            replace_module(model, name, quantized)
        best = min(errors, key=errors.__getitem__)
        replace_module(model, best, linears[best])
        candidates.remove(best)
        kept.append(best)
    if (float_dtype or auto_cpu_dtype()) == "bfloat16":
        for name in kept:
            replace_module(model, name, Bf16Linear(linears[name]))
    return model


def float_linears(model: nn.Module) -> list[str]:
    """Names of the Linear layers that `quantize_int8` kept in floating point."""
    return [name for name, m in model.named_modules() if type(m) in (nn.Linear, Bf16Linear)]


@lru_cache(maxsize=1)
def calibration_texts() -> tuple[str, ...]:
    """Short and long customer-feedback texts in English and Chinese, built from what ships with the package: the
    hand-written dev rows and the training templates, single and joined to chat and transcript lengths (the
    activation range grows with the length)."""
    from cx_nlp.models import templates

    data = resources.files("cx_nlp").joinpath("data", "neutral_dev_handwritten.jsonl").read_text(encoding="utf-8")
    dev = [json.loads(line)["text"] for line in data.splitlines() if line.strip()]
    english = [text for text, _ in templates.en_sentences(40, seed=101)]
    chinese = templates.zh_neutral(60, seed=103)
    singles = dev + english + chinese
    chats = [" ".join(english[i : i + 6]) for i in range(0, len(english), 6)]
    transcripts = [" ".join(dev[i : i + 14]) for i in range(0, len(dev), 14)]
    chinese_chats = ["，".join(chinese[i : i + 8]) for i in range(0, len(chinese), 8)]
    return tuple(singles + chats + transcripts + chinese_chats)
