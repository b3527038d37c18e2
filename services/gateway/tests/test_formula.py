import pytest

from cx_gateway.analytics.formula import FormulaError, evaluate, parse

NAMES = {"nps", "csat", "complaint_rate"}


def test_weighted_formula():
    tree = parse("0.4*nps/100 + 0.3*csat/5 + 0.3*(1 - complaint_rate)", NAMES)
    assert evaluate(tree, {"nps": 50, "csat": 4, "complaint_rate": 0.1}) == pytest.approx(0.2 + 0.24 + 0.27)
    assert evaluate(tree, {"nps": None, "csat": 4, "complaint_rate": 0.1}) is None
    assert evaluate(parse("max(nps, 0) / csat", NAMES), {"nps": -5, "csat": 0}) is None


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os').system('x')",
        "nps.real",
        "[nps]",
        "nps if csat else 1",
        "lambda: 1",
        "open('f')",
        "nps @ csat",
        "unknown + 1",
        "'a' * 3",
        "nps ** 100",
    ],
)
def test_rejects_anything_but_arithmetic(formula):
    with pytest.raises(FormulaError):
        evaluate(parse(formula, NAMES), {"nps": 2, "csat": 1, "complaint_rate": 0})
