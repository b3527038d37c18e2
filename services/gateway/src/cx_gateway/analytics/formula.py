"""Safe KPI formulas: arithmetic over named metrics, parsed with `ast` and evaluated by walking a whitelist of node
types (no eval). Example: `0.4*nps/100 + 0.3*csat/5 + 0.3*(1 - complaint_rate)`."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., float]] = {"min": min, "max": max, "abs": abs, "round": round}
MAX_LENGTH = 500


class FormulaError(ValueError):
    pass


def parse(formula: str, allowed_names: set[str]) -> ast.Expression:
    """Parse and validate; raises FormulaError naming what is not allowed."""
    if len(formula) > MAX_LENGTH:
        raise FormulaError(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"syntax error at column {exc.offset}") from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.Expression | ast.Load | ast.operator | ast.unaryop):
            if isinstance(node, ast.operator) and type(node) not in _BINARY:
                raise FormulaError(f"operator {type(node).__name__} is not allowed")
            if isinstance(node, ast.unaryop) and type(node) not in _UNARY:
                raise FormulaError(f"operator {type(node).__name__} is not allowed")
            continue
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            continue
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float) or isinstance(node.value, bool):
                raise FormulaError("only numeric constants are allowed")
            continue
        if isinstance(node, ast.Name):
            if node.id not in allowed_names and node.id not in _FUNCTIONS:
                raise FormulaError(f"unknown name {node.id!r}")
            continue
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
                raise FormulaError("only min, max, abs and round may be called")
            continue
        raise FormulaError(f"{type(node).__name__} is not allowed")
    return tree


def evaluate(tree: ast.Expression, variables: Mapping[str, float | None]) -> float | None:
    """The value, or None when a variable it needs has no data (or it divides by zero)."""

    def walk(node: ast.AST) -> float | None:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)
            return float(node.value)
        if isinstance(node, ast.Name):
            value = variables.get(node.id)
            return None if value is None else float(value)
        if isinstance(node, ast.UnaryOp):
            operand = walk(node.operand)
            return None if operand is None else _UNARY[type(node.op)](operand)
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Pow) and (abs(right) > 10 or abs(left) > 1e6):
                raise FormulaError("exponent out of range")
            try:
                return _BINARY[type(node.op)](left, right)
            except ZeroDivisionError:
                return None
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            args = [walk(a) for a in node.args]
            if any(a is None for a in args) or not args:
                return None
            return float(_FUNCTIONS[node.func.id](*args))
        raise FormulaError(f"{type(node).__name__} is not allowed")

    value = walk(tree)
    if value is not None and (math.isnan(value) or math.isinf(value)):
        return None
    return value
