"""int8 Linear layers: smoothing keeps the product exact in float and shrinks the quantisation error where a few
input channels carry outliers; calibration texts ship with the package and are none of the test rows."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from cx_nlp.evaluation import data_path  # noqa: E402
from cx_nlp.models.quantize import (  # noqa: E402
    FLOAT_LAYERS,
    Bf16Linear,
    SmoothedInt8Linear,
    calibration_texts,
    float_linears,
    input_absmax,
    preferred_engine,
    quantize_int8,
    smoothing_factors,
)


def _linear_and_outlier_inputs() -> tuple[torch.nn.Linear, torch.Tensor]:
    """Inputs like a transformer's after GELU or layer norm: most channels ~N(0, 1), three channels 60x larger."""
    torch.manual_seed(3)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(4, 20, 64)
    x[..., [5, 17, 40]] *= 60.0
    return linear, x


def _relative_error(layer: torch.nn.Module, linear: torch.nn.Linear, x: torch.Tensor) -> float:
    with torch.inference_mode():
        exact = linear(x)
        return float((layer(x) - exact).norm() / exact.norm())


def test_smoothing_cuts_the_error_that_outlier_channels_cause() -> None:
    linear, x = _linear_and_outlier_inputs()
    engine = preferred_engine()
    plain = SmoothedInt8Linear(linear, None, engine)
    smooth = smoothing_factors(x.abs().reshape(-1, 64).amax(0), linear.weight)
    smoothed = SmoothedInt8Linear(linear, smooth, engine)
    plain_error, smoothed_error = _relative_error(plain, linear, x), _relative_error(smoothed, linear, x)
    assert smoothed_error < 0.02
    assert smoothed_error < plain_error / 2


def test_smoothing_factors_balance_activation_and_weight_ranges() -> None:
    x_absmax = torch.tensor([1.0, 100.0, 4.0])
    weight = torch.tensor([[1.0, 1.0, 0.5], [-2.0, 0.5, 1.0]])  # column absmax 2, 1, 1
    s = smoothing_factors(x_absmax, weight, alpha=0.5)
    assert torch.allclose(s, torch.tensor([(1 / 2) ** 0.5, 10.0, 2.0]))
    # after smoothing, each channel's activation range and weight range are equal (alpha = 0.5)
    assert torch.allclose(x_absmax / s, weight.abs().amax(0) * s)


def test_quantize_int8_replaces_every_linear_and_restores_the_engine() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(32, 8)
    with torch.inference_mode():
        expected = model(x)
    before = torch.backends.quantized.engine
    seen, output = input_absmax(model, lambda: model(x))
    assert set(seen) == {"0", "2"} and seen["0"].shape == (8,) and seen["2"].shape == (16,)
    assert torch.equal(output, expected)
    quantize_int8(model, lambda: model(x), float_layers=0)
    assert torch.backends.quantized.engine == before
    assert all(isinstance(m, SmoothedInt8Linear) for m in (model[0], model[2]))
    assert model[0].inv_smooth is not None and float_linears(model) == []
    with torch.inference_mode():
        got = model(x)
    assert float((got - expected).norm() / expected.norm()) < 0.03


def test_without_calibration_there_is_no_smoothing_and_no_float_layer() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    quantize_int8(model, None)
    assert isinstance(model[0], SmoothedInt8Linear) and model[0].inv_smooth is None


class _TokenSpike(torch.nn.Module):
    """The first token 300x larger: one activation scale per call then leaves the other tokens a few levels, and
    no per-channel smoothing can help (the outlier is a token, not a channel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[:, 0] *= 300.0
        return y


def test_the_down_projection_that_hurts_the_output_most_stays_in_float32() -> None:
    torch.manual_seed(1)
    layers = [torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 16)]
    layers += [torch.nn.Linear(16, 64), torch.nn.GELU(), _TokenSpike(), torch.nn.Linear(64, 16)]
    model = torch.nn.Sequential(*layers).eval()
    x = torch.randn(8, 10, 16)

    def calibrate() -> object:
        with torch.inference_mode():
            return model(x).numpy()

    expected = calibrate()
    quantize_int8(model, calibrate, float_layers=FLOAT_LAYERS, float_dtype="float32")
    assert FLOAT_LAYERS == 1
    assert float_linears(model) == ["6"]  # of the down-projections "2" and "6"; "0" and "3" project up
    assert all(isinstance(model[i], SmoothedInt8Linear) for i in (0, 2, 3))
    got = calibrate()
    assert abs(got - expected).max() / abs(expected).max() < 0.05


@pytest.mark.parametrize("float_dtype", ["bfloat16", "float32"])
def test_the_kept_layer_runs_in_the_chosen_float_precision(float_dtype: str) -> None:
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 16)).eval()
    x = torch.randn(8, 10, 16)

    def calibrate() -> object:
        with torch.inference_mode():
            return model(x).numpy()

    expected = calibrate()
    quantize_int8(model, calibrate, float_dtype=float_dtype)
    assert float_linears(model) == ["2"]
    assert type(model[2]) is (Bf16Linear if float_dtype == "bfloat16" else torch.nn.Linear)
    got = calibrate()
    assert got.dtype == expected.dtype and abs(got - expected).max() / abs(expected).max() < 0.05


def test_calibration_texts_ship_with_the_package_and_leave_out_the_test_rows() -> None:
    texts = calibration_texts()
    assert len(texts) > 200
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(texts))  # Chinese
    assert any(t.isascii() and len(t.split()) > 60 for t in texts)  # transcript-length English
    test_rows = set()
    for name in ("neutral_handwritten.jsonl", "cx_aspects_test.jsonl"):
        for line in data_path(name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                test_rows.add(json.loads(line)["text"])
    joined = "\n".join(texts)
    assert not [row for row in test_rows if row in joined]
