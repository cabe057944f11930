"""Money: integer micros inside, Decimal only at the facade, half-even, exact splits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacer_stream.core.money import (
    MAX_MICROS,
    MICROS_PER_UNIT,
    check_micros,
    from_micros,
    split_exact,
    to_micros,
)
from pacer_stream.errors import InvalidAmount, PacerError, WrongType

FAST = settings(max_examples=150, deadline=None)


# -- to_micros ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("1", 1_000_000),
        ("0.000001", 1),
        ("1000.00", 1_000_000_000),
        ("12.3456789", 12_345_679),
        # half-even at the sixth fraction digit: ties go to the even micro
        ("0.0000005", 0),
        ("0.0000015", 2),
        ("0.0000025", 2),
        ("0.0000035", 4),
        ("2.5000005", 2_500_000),
        ("2.5000015", 2_500_002),
        # not a tie: rounds to nearest
        ("0.00000050001", 1),
        ("0.0000004999", 0),
    ],
)
def test_to_micros_rounds_half_even(text: str, micros: int) -> None:
    assert to_micros(Decimal(text)) == micros


@pytest.mark.parametrize("bad", [1.5, 1, "1.00", None, True, 10**6])
def test_to_micros_requires_decimal(bad: object) -> None:
    with pytest.raises(WrongType) as exc:
        to_micros(bad)  # type: ignore[arg-type]
    assert isinstance(exc.value, TypeError)
    assert isinstance(exc.value, PacerError)
    assert "decimal.Decimal" in str(exc.value)


@pytest.mark.parametrize("bad", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_to_micros_rejects_non_finite(bad: str) -> None:
    with pytest.raises(InvalidAmount, match="finite"):
        to_micros(Decimal(bad))


def test_to_micros_rejects_negative_and_zero_when_asked() -> None:
    with pytest.raises(InvalidAmount, match="negative"):
        to_micros(Decimal("-0.01"))
    assert to_micros(Decimal("0")) == 0
    with pytest.raises(InvalidAmount, match="positive"):
        to_micros(Decimal("0"), allow_zero=False)
    # rounds to zero micros: zero is what counts
    with pytest.raises(InvalidAmount, match="positive"):
        to_micros(Decimal("0.0000004"), allow_zero=False)


def test_to_micros_rejects_too_large_values() -> None:
    assert to_micros(from_micros(MAX_MICROS)) == MAX_MICROS
    with pytest.raises(InvalidAmount, match="too large"):
        to_micros(from_micros(MAX_MICROS) + Decimal("0.000001"))
    with pytest.raises(InvalidAmount):
        to_micros(Decimal("1e1000"))  # beyond the Decimal context: still a typed error


def test_error_messages_name_the_argument() -> None:
    with pytest.raises(InvalidAmount, match="daily_budget"):
        to_micros(Decimal("-1"), what="daily_budget")


# -- check_micros / from_micros --------------------------------------------------------
def test_check_micros() -> None:
    assert check_micros(5) == 5
    for bad_type in (1.0, "5", True, None):
        with pytest.raises(WrongType):
            check_micros(bad_type)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        check_micros(-1)
    with pytest.raises(InvalidAmount):
        check_micros(0, allow_zero=False)
    with pytest.raises(InvalidAmount):
        check_micros(MAX_MICROS + 1)


def test_from_micros_has_six_fraction_digits() -> None:
    assert from_micros(1) == Decimal("0.000001")
    assert str(from_micros(1_500_000)) == "1.500000"
    assert from_micros(0) == 0
    assert from_micros(MAX_MICROS) == Decimal(MAX_MICROS) / MICROS_PER_UNIT


@FAST
@given(st.integers(min_value=0, max_value=MAX_MICROS))
def test_micros_round_trip(micros: int) -> None:
    assert to_micros(from_micros(micros)) == micros


@FAST
@given(st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=9))
def test_to_micros_is_nearest_micro(amount: Decimal) -> None:
    micros = to_micros(amount)
    assert abs(Decimal(micros) - amount * MICROS_PER_UNIT) <= Decimal("0.5")


# -- split_exact -----------------------------------------------------------------------
def test_split_exact_simple_cases() -> None:
    assert split_exact(10, [1, 1, 1]) == [4, 3, 3]  # leftover to the earliest tie
    assert split_exact(100, [1, 3]) == [25, 75]
    assert split_exact(7, [0, 0]) == [4, 3]  # all-zero weights: even split
    assert split_exact(0, [1, 2]) == [0, 0]
    assert split_exact(0, []) == []
    assert split_exact(5, [float("nan"), 1]) == [0, 5]
    assert split_exact(5, [-3, 1]) == [0, 5]


def test_split_exact_largest_remainder() -> None:
    # 10 * [0.45, 0.45, 0.1] = [4.5, 4.5, 1]: one leftover micro, to the earlier tie
    assert split_exact(10, [0.45, 0.45, 0.1]) == [5, 4, 1]
    # remainders 0.2 / 0.8: the larger remainder gets the micro
    assert split_exact(2, [0.6, 0.4]) == [1, 1]


def test_split_exact_errors() -> None:
    with pytest.raises(InvalidAmount):
        split_exact(1, [])
    with pytest.raises(InvalidAmount):
        split_exact(-1, [1.0])


def test_split_exact_ignores_infinite_weights_like_nan() -> None:
    """Non-finite weights count as zero (as in the allocation shaping), never a crash."""
    assert split_exact(9, [float("inf"), 1.0, 2.0]) == [0, 3, 6]


weights_strategy = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=30,
)


@FAST
@given(st.integers(min_value=0, max_value=MAX_MICROS), weights_strategy)
def test_split_exact_sums_exactly_and_is_proportional(total: int, weights: list[float]) -> None:
    parts = split_exact(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)
    ints = [round(w * 10**12) for w in weights]
    wsum = sum(ints)
    for p, w in zip(parts, ints, strict=True):
        if wsum == 0:
            assert abs(p - total / len(weights)) <= 1
        else:
            # largest remainder: every part is within one micro of its exact share
            exact = total * w / wsum
            assert abs(p - exact) <= 1 + 1e-9 * exact


@FAST
@given(st.integers(min_value=0, max_value=10**12), weights_strategy)
def test_split_exact_is_deterministic(total: int, weights: list[float]) -> None:
    assert split_exact(total, weights) == split_exact(total, list(weights))


def test_decimal_appears_only_at_the_boundary() -> None:
    """Inside the core money is integer micros: only ``core.money`` (the conversion)
    touches Decimal; every other core module works on ints."""
    import importlib
    import inspect
    import pkgutil

    import pacer_stream.core as core

    offenders = []
    for info in pkgutil.walk_packages(core.__path__, "pacer_stream.core."):
        if info.name == "pacer_stream.core.money":
            continue
        source = inspect.getsource(importlib.import_module(info.name))
        if "Decimal" in source or "import decimal" in source:
            offenders.append(info.name)
    assert offenders == []
