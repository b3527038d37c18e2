"""bfloat16 Linear layers on CPU with their weights packed once for oneDNN.

`nn.functional.linear` in bfloat16 hands oneDNN a plain row-major weight, and oneDNN reorders it into its blocked
layout on every call. For the small batches a served model sees, that reorder is most of the layer's time: on a
Xeon with AMX-BF16 (1 thread) a 384 -> 1536 product of 8 tokens took 149 us as `nn.Linear` and 70 us with the weight
packed beforehand; a MiniLM forward pass of one short text (37 such layers, whose weights no longer stay in cache
across the pass) took 8.5 ms against 6.8; at 512 tokens a layer still gains ~1.3x. The packed product is the same
oneDNN kernel on the same bfloat16 numbers, so its output is the same (bit for bit for one layer; identical sentiment
probabilities on the 384 benchmark texts). float32 gains nothing (its MKL kernels pack inside the call) and stays as
it is.

The packing uses `torch.ops.mkldnn._reorder_linear_weight` and `_linear_pointwise`, the ops `torch.compile`'s
CPU backend emits for frozen Linear layers: eager, with no compile step at start-up. Where this PyTorch build or
CPU has no oneDNN bfloat16 path, `packing_available()` is False and the model keeps its plain layers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypeGuard

import structlog
import torch
from torch import nn

from cx_nlp.models.layers import replace_module
from cx_nlp.models.quantize import Bf16Linear

log = structlog.stdlib.get_logger("cx_nlp.onednn")
_packed = 0  # layers packed in this process (`cx-nlp info`)


class PackedBf16Linear(nn.Module):
    """`y = x W^T + b` in bfloat16 with W in oneDNN's blocked layout; input and output in the caller's dtype. The
    packed weight is an opaque oneDNN tensor: it is not a parameter (no state dict, no `.to()`, no deepcopy)."""

    def __init__(self, linear: nn.Linear | Bf16Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().to(torch.bfloat16).contiguous()
        bias: torch.Tensor | None = linear.bias
        self.in_features, self.out_features = int(weight.shape[1]), int(weight.shape[0])
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        y: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x.to(torch.bfloat16), self.packed, self.bias, "none", [], ""
        )
        return y if dtype == torch.bfloat16 else y.to(dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _is_bf16_linear(module: nn.Module) -> TypeGuard[nn.Linear | Bf16Linear]:
    if not isinstance(module, nn.Linear | Bf16Linear):  # Bf16Linear: the layer int8 keeps in floating point
        return False
    return module.weight.dtype == torch.bfloat16 and module.weight.device.type == "cpu"


@lru_cache(maxsize=1)
def packing_available() -> bool:
    """Whether packed bfloat16 products run here and give what `nn.Linear` gives (checked once per process)."""
    try:
        if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
            return False
        generator = torch.Generator().manual_seed(0)
        linear = nn.Linear(64, 48).to(torch.bfloat16).eval()
        x = torch.randn(2, 5, 64, generator=generator).to(torch.bfloat16)
        with torch.inference_mode():
            expected, got = linear(x).float(), PackedBf16Linear(linear)(x).float()
        return bool(torch.allclose(got, expected, rtol=2e-2, atol=2e-2))
    except (RuntimeError, AttributeError, NotImplementedError) as exc:  # no oneDNN bf16 kernels on this CPU/build
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        log.info("onednn_packing_unavailable", reason=reason)
        return False


def pack_bf16_linears(model: nn.Module) -> int:
    """Replace every bfloat16 Linear of `model` on CPU by a `PackedBf16Linear`, in place; the number replaced (0
    where packing is unavailable)."""
    layers = [(name, module) for name, module in model.named_modules() if name and _is_bf16_linear(module)]
    if not layers or not packing_available():
        return 0
    for name, linear in layers:
        replace_module(model, name, PackedBf16Linear(linear))
    global _packed
    _packed += len(layers)
    log.debug("bf16_linears_packed", layers=len(layers))
    return len(layers)


def packed_layers() -> int:
    """How many Linear layers this process has packed."""
    return _packed
