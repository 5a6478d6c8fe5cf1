"""Safe expressions: what they compute, and everything they refuse (never via ``eval``)."""

from __future__ import annotations

import builtins
import contextlib
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octosim.errors import UserError
from octosim.model.expr import ExprError, compile_expression


def ev(source: str, **env: float) -> float:
    return compile_expression(source)(env)


@pytest.mark.parametrize(
    "source,expected",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024.0),
        ("2 ** -1", 0.5),
        ("2 ** 3 ** 2", 512.0),  # right-associative, like Python
        ("-3 + +2", -1),
        ("--3", 3),
        ("1.5e3 + 0.5", 1500.5),
        ("1_000", 1000),
    ],
)
def test_arithmetic(source: str, expected: float) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    "source,expected",
    [
        ("1 < 2", 1.0),
        ("2 < 1", 0.0),
        ("1 <= 1", 1.0),
        ("1 >= 2", 0.0),
        ("3 == 3.0", 1.0),
        ("3 != 3", 0.0),
        ("1 < 2 < 3", 1.0),
        ("1 < 3 < 2", 0.0),
        ("3 > 2 > 2", 0.0),
        ("1 < 2 and 2 < 3", 1.0),
        ("1 < 2 and 3 < 2", 0.0),
        ("1 > 2 or 2 < 3", 1.0),
        ("1 > 2 or 3 < 2", 0.0),
        ("not 1 > 2", 1.0),
        ("not 0", 1.0),
        ("not 5", 0.0),
        ("true", 1.0),
        ("false or True", 1.0),
        ("not (true and False)", 1.0),
    ],
)
def test_comparisons_and_logic_give_0_or_1(source: str, expected: float) -> None:
    assert ev(source) == expected


def test_and_or_short_circuit() -> None:
    # The right side would divide by zero: it must not be evaluated.
    assert ev("n > 0 and 10 / n > 1", n=0) == 0.0
    assert ev("n == 0 or 10 / n > 1", n=0) == 1.0
    with pytest.raises(ExprError, match="division by zero"):
        ev("n == 0 and 10 / n > 1", n=0)


def test_conditional_expression() -> None:
    e = compile_expression("100 if objects > 3 else 10 * objects")
    assert e({"objects": 5}) == 100
    assert e({"objects": 2}) == 20
    # Only the branch taken is evaluated.
    assert ev("0 if n == 0 else 1 / n", n=0) == 0


@pytest.mark.parametrize(
    "source,expected",
    [
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("min(5)", 5),
        ("abs(-4)", 4),
        ("ceil(2.1)", 3),
        ("floor(2.9)", 2),
        ("round(2.5)", 2),  # Python's banker's rounding inside expressions
        ("round(3.5)", 4),
        ("sqrt(16)", 4.0),
        ("log(math_e)", 1.0),
        ("log(8, 2)", 3.0),
        ("log2(1024)", 10.0),
        ("exp(0)", 1.0),
    ],
)
def test_functions(source: str, expected: float) -> None:
    assert ev(source, math_e=math.e) == pytest.approx(expected)


def test_variables() -> None:
    e = compile_expression("2000 + 400 * objects + tokens / 2")
    assert e.names == frozenset({"objects", "tokens"})
    assert e({"objects": 3, "tokens": 10}) == 3205
    assert e({"objects": 0, "tokens": 0, "unused": 9}) == 2000
    assert compile_expression("true and 3 > 2").names == frozenset()
    assert compile_expression("min(a, b) if c else d").names == frozenset("abcd")
    with pytest.raises(ExprError, match="variable 'tokens' is not set here"):
        e({"objects": 1})


@pytest.mark.parametrize(
    "source,env,match",
    [
        ("1 / n", {"n": 0}, "division by zero"),
        ("1 // n", {"n": 0}, "division by zero"),
        ("1 % n", {"n": 0}, "division by zero"),
        ("log(n)", {"n": 0}, "math error"),
        ("sqrt(n)", {"n": -1}, "math error"),
        ("exp(n)", {"n": 1000}, "math error"),
        ("n ** 100", {"n": 2}, "larger than 64"),
        ("n ** 0.5", {"n": -4}, "not real"),
        ("n * 1e300 * 1e300", {"n": 1}, "not a finite number"),
        ("n * 1000000000000000000 * 1000000000000000000" * 1, {"n": 10**270}, "too large"),
    ],
)
def test_evaluation_errors(source: str, env: dict[str, float], match: str) -> None:
    e = compile_expression(source)  # compiles: only the values make it fail
    with pytest.raises(ExprError, match=match):
        e(env)


REJECTED = [
    ("__import__('os').system('touch {marker}')", "Attribute is not allowed"),
    ("__import__('os')", "only these functions"),
    ("eval('1')", "only these functions"),
    ("exec('x = 1')", "only these functions"),
    ("open('{marker}', 'w')", "only these functions"),
    ("().__class__", "Attribute is not allowed"),
    ("n.real", "Attribute is not allowed"),
    ("(1).__class__.__bases__[0].__subclasses__()", "Attribute is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("(lambda: 1)()", "Lambda is not allowed"),
    ("[x for x in (1, 2)]", "ListComp is not allowed"),
    ("{x: 1 for x in (1, 2)}", "DictComp is not allowed"),
    ("sum(x for x in (1, 2))", "only these functions"),
    ("[1, 2]", "List is not allowed"),
    ("(1, 2)", "Tuple is not allowed"),
    ("{1, 2}", "Set is not allowed"),
    ("{'a': 1}", "Dict is not allowed"),
    ("'abc'", "only numbers"),
    ("b'abc'", "only numbers"),
    ("f'{n}'", "JoinedStr is not allowed"),
    ("None", "only numbers"),
    ("...", "only numbers"),
    ("1j", "only numbers"),
    ("n[0]", "Subscript is not allowed"),
    ("(y := 1)", "NamedExpr is not allowed"),
    ("await n", "cannot parse|Await is not allowed"),
    ("yield n", "cannot parse"),
    ("n if", "cannot parse"),
    ("x = 1", "cannot parse"),
    ("import os", "cannot parse"),
    ("1 << 2", "LShift is not allowed"),
    ("1 & 2", "BitAnd is not allowed"),
    ("1 | 2", "BitOr is not allowed"),
    ("1 ^ 2", "BitXor is not allowed"),
    ("~1", "Invert is not allowed"),
    ("1 @ 2", "MatMult is not allowed"),
    ("n in (1, 2)", "In is not allowed"),
    ("n is 1", "Is is not allowed"),
    ("n is not 1", "IsNot is not allowed"),
    ("min(*n)", "Starred is not allowed"),
    ("round(n, ndigits=2)", "keyword arguments"),
    ("min()", "takes 1 to 16 arguments"),
    ("abs(1, 2)", "takes 1 to 1 arguments"),
    ("9" * 25, "too large"),
    ("9**9**9**9", None),  # constant: rejected when it is evaluated at load time (below)
    ("(" * 100 + "1" + ")" * 100, "nested too deeply"),
    ("-" * 500 + "1", "nested too deeply"),
    ("1" + "+1" * 200, "nested too deeply"),
    ("1 + " * 2000 + "1", "longer than"),
    ("", "cannot parse"),
    ("1\x00", "cannot parse"),
]


@pytest.mark.parametrize("source,match", REJECTED, ids=[s[:30] for s, _ in REJECTED])
def test_rejected_at_compile_time(tmp_path: Path, source: str, match: str | None) -> None:
    marker = tmp_path / "pwned"
    source = source.replace("{marker}", str(marker))
    if match is None:
        e = compile_expression(source)
        with pytest.raises(ExprError, match="larger than 64"):
            e({})
    else:
        with pytest.raises(UserError, match=match):
            compile_expression(source)
    assert not marker.exists()


def test_rejects_non_strings() -> None:
    for bad in (None, 3, ["1"], {"a": 1}):
        with pytest.raises(UserError, match="expected an expression string"):
            compile_expression(bad)  # type: ignore[arg-type]


def test_never_uses_eval_or_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec/compile called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    e = compile_expression("max(1, n) * 2 if n > 0 and not n == 3 else -1")
    assert e({"n": 4}) == 8
    assert e({"n": 3}) == -1


def test_boolean_results_are_numbers() -> None:
    v = ev("2 > 1")
    assert v == 1.0 and type(v) is float
    v = ev("1 > 2 or 0")  # `or` returns its last operand's truth here
    assert v == 0.0


# --- fuzzing: only UserError at compile time, only ExprError at evaluation --------------------

_ATOMS = st.sampled_from(["0", "1", "2.5", "n", "m", "1e3", "-1", "true", "(n)"])
_OPS = st.sampled_from(
    ["+", "-", "*", "/", "//", "%", "**", "<", "<=", "==", "!=", " and ", " or "]
)


@st.composite
def _exprs(draw: st.DrawFn) -> str:
    parts = [draw(_ATOMS)]
    for _ in range(draw(st.integers(0, 8))):
        parts.append(draw(_OPS))
        atom = draw(_ATOMS)
        if draw(st.booleans()):
            atom = draw(st.sampled_from(["min", "max", "abs", "sqrt", "log", "not "])) + (
                f"({atom})" if not atom.startswith("(") else atom
            )
        parts.append(atom)
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(_exprs(), st.floats(-1e6, 1e6), st.integers(-50, 50))
def test_fuzz_well_formed_expressions(source: str, n: float, m: int) -> None:
    try:
        e = compile_expression(source)
    except UserError:
        return
    try:
        value = e({"n": n, "m": m})
    except ExprError:
        return
    assert isinstance(value, int | float)
    assert math.isfinite(value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_fuzz_arbitrary_text(source: str) -> None:
    try:
        e = compile_expression(source)
    except UserError:
        return
    with contextlib.suppress(ExprError):
        e(dict.fromkeys(e.names, 1.5))
