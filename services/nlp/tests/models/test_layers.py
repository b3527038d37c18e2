"""The query, key and value projections of a self-attention block as one product: the same outputs as the three
layers, a slice per projection, recomputed for any other input, nothing kept between calls; int8 uses it."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from cx_nlp.models.layers import (  # noqa: E402
    FusedProjection,
    ProjectionPart,
    attention_projections,
    fuse_attention_projections,
    stacked,
)
from cx_nlp.models.quantize import SmoothedInt8Linear, quantize_int8  # noqa: E402


def _bert(layers: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=40, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64
    )
    return transformers.BertModel(config).eval()


def _run(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.tensor([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0]])
    with torch.inference_mode():
        out: torch.Tensor = model(input_ids=ids, attention_mask=(ids > 0).long()).last_hidden_state
    return out


def test_every_self_attention_block_is_found_and_fused_with_the_same_output() -> None:
    model = _bert()
    expected = _run(model)
    assert [name for name, _ in attention_projections(model)] == [f"encoder.layer.{i}.attention.self" for i in range(2)]
    replaced = fuse_attention_projections(model, lambda linear, _: linear)  # float: only the slicing changes
    assert len(replaced) == 6
    assert replaced[:3] == [f"encoder.layer.0.attention.self.{p}" for p in ("query", "key", "value")]
    assert all(isinstance(model.get_submodule(name), ProjectionPart) for name in replaced)
    assert not any(isinstance(m, torch.nn.Linear) for m in model.encoder.layer[0].attention.self.children())
    torch.testing.assert_close(_run(model), expected, rtol=1e-5, atol=1e-5)
    for block in model.encoder.layer:  # every slice was handed out: no activations stay behind
        assert block.attention.self.query.fused._last is None


def test_a_part_called_with_another_input_computes_again() -> None:
    torch.manual_seed(1)
    linears = [torch.nn.Linear(8, 4), torch.nn.Linear(8, 6, bias=False)]
    fused = FusedProjection(stacked(linears), [4, 6])
    first, second = (ProjectionPart(fused, i, 8) for i in range(2))
    x, y = torch.randn(3, 8), torch.randn(3, 8)
    with torch.inference_mode():
        torch.testing.assert_close(first(x), linears[0](x))
        torch.testing.assert_close(second(y), linears[1](y))  # not x's slice
        torch.testing.assert_close(first(x), linears[0](x))
        torch.testing.assert_close(first(x), linears[0](x))  # the same part again: computed again, same answer
    assert (first.out_features, second.out_features) == (4, 6)


def test_blocks_that_are_not_self_attention_are_left_alone() -> None:
    class CrossAttention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = (torch.nn.Linear(8, 8) for _ in range(3))

    class OddSelfAttention(torch.nn.Module):  # projections of different input sizes
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = torch.nn.Linear(8, 8), torch.nn.Linear(4, 8), torch.nn.Linear(8, 8)

    model = torch.nn.Sequential(CrossAttention(), OddSelfAttention())
    assert attention_projections(model) == []
    assert fuse_attention_projections(model, lambda linear, _: linear) == []


def test_int8_fuses_the_projections_with_one_smoothing_and_stays_close_to_float32() -> None:
    model = _bert()
    expected = _run(model)
    quantize_int8(model, lambda: _run(model), float_layers=0)
    block = model.encoder.layer[0].attention.self
    assert isinstance(block.query, ProjectionPart) and block.query.fused is block.value.fused
    layer = block.query.fused.layer
    assert isinstance(layer, SmoothedInt8Linear) and layer.out_features == 96 and layer.inv_smooth is not None
    got = _run(model)
    cosine = torch.nn.functional.cosine_similarity(got.flatten(1), expected.flatten(1))
    assert float(cosine.min()) > 0.99
