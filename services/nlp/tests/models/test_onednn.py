"""bfloat16 Linear layers with oneDNN-packed weights: the same numbers as `nn.Linear`, every bf16 layer of a CPU
model packed, float32 models and hosts without the kernels left alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from cx_nlp.models import onednn  # noqa: E402
from cx_nlp.models.onednn import PackedBf16Linear, pack_bf16_linears, packing_available  # noqa: E402
from cx_nlp.models.quantize import Bf16Linear  # noqa: E402

needs_packing = pytest.mark.skipif(not packing_available(), reason="no oneDNN bfloat16 kernels on this CPU/build")


def _block() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32, bias=False)).eval()


@needs_packing
@pytest.mark.parametrize("shape", [(3, 32), (2, 7, 32), (1, 1, 32)])
def test_a_packed_layer_gives_what_the_plain_bf16_layer_gives(shape: tuple[int, ...]) -> None:
    linear = torch.nn.Linear(32, 48).to(torch.bfloat16).eval()
    packed = PackedBf16Linear(linear)
    x = torch.randn(*shape).to(torch.bfloat16)
    with torch.inference_mode():
        expected, got = linear(x), packed(x)
        as_float = packed(x.float())
    assert got.dtype == torch.bfloat16 and got.shape == (*shape[:-1], 48)
    assert torch.allclose(got.float(), expected.float(), rtol=1e-2, atol=1e-2)
    assert as_float.dtype == torch.float32  # the caller's dtype comes back
    assert packed.in_features == 32 and packed.out_features == 48


@needs_packing
def test_every_bf16_linear_of_a_cpu_model_is_packed_and_the_output_stays() -> None:
    model = _block().to(torch.bfloat16)
    x = torch.randn(4, 5, 32).to(torch.bfloat16)
    with torch.inference_mode():
        before = model(x).float()
    assert pack_bf16_linears(model) == 2
    assert [type(m) for m in model] == [PackedBf16Linear, torch.nn.GELU, PackedBf16Linear]
    assert model[2].bias is None
    with torch.inference_mode():
        after = model(x).float()
    assert torch.allclose(after, before, rtol=1e-2, atol=1e-2)
    assert pack_bf16_linears(model) == 0  # nothing left to pack


@needs_packing
def test_the_layer_int8_keeps_in_bfloat16_is_packed_too() -> None:
    model = torch.nn.Sequential(Bf16Linear(torch.nn.Linear(32, 16)))
    x = torch.randn(3, 32)
    with torch.inference_mode():
        before = model(x)
    assert pack_bf16_linears(model) == 1 and isinstance(model[0], PackedBf16Linear)
    with torch.inference_mode():
        after = model(x)
    assert after.dtype == torch.float32 and torch.allclose(after, before, rtol=1e-2, atol=1e-2)


def test_float32_models_are_left_as_they_are() -> None:
    model = _block()
    assert pack_bf16_linears(model) == 0
    assert [type(m) for m in model] == [torch.nn.Linear, torch.nn.GELU, torch.nn.Linear]


def test_without_the_kernels_nothing_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onednn, "packing_available", lambda: False)
    model = _block().to(torch.bfloat16)
    assert pack_bf16_linears(model) == 0
    assert type(model[0]) is torch.nn.Linear
