"""Integer micros: the only representation of money inside pacer-stream.

Decimal appears only at the ``BudgetPacer`` boundary. Conversions round half-even, and
every split of an amount into parts (hourly allocations, reallocation moves) is exact:
the parts always sum to the whole, so no rounding ever creates or destroys a micro.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from pacer_stream.errors import InvalidAmount, WrongType

MICROS_PER_UNIT = 1_000_000
#: Largest amount accepted anywhere (2^53 - 1): survives every JSON/Lua/float64 hop intact.
MAX_MICROS = 2**53 - 1
_MICRO = Decimal("0.000001")
#: Weights are turned into integers with this resolution before an exact split.
_WEIGHT_SCALE = 10**12


def to_micros(amount: Decimal, *, what: str = "amount", allow_zero: bool = True) -> int:
    """Convert a Decimal amount of currency units to integer micros (half-even)."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal):
        raise WrongType(f"{what} must be a decimal.Decimal, got {type(amount).__name__} {amount!r}")
    if not amount.is_finite():
        raise InvalidAmount(f"{what} must be a finite number, got {amount}")
    try:
        micros = int((amount * MICROS_PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except InvalidOperation as exc:  # pragma: no cover - quantize overflow on absurd values
        raise InvalidAmount(f"{what} is out of range: {amount}") from exc
    check_micros(micros, what=what, allow_zero=allow_zero)
    return micros


def check_micros(micros: int, *, what: str = "amount", allow_zero: bool = True) -> int:
    """Validate an integer micros value (type, sign, range) and return it."""
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise WrongType(f"{what} must be integer micros, got {type(micros).__name__}")
    if micros < 0:
        raise InvalidAmount(f"{what} must not be negative, got {micros} micros")
    if micros == 0 and not allow_zero:
        raise InvalidAmount(f"{what} must be positive, got 0")
    if micros > MAX_MICROS:
        raise InvalidAmount(f"{what} is too large: {micros} micros > {MAX_MICROS}")
    return micros


def from_micros(micros: int) -> Decimal:
    """Integer micros to a Decimal with six fraction digits."""
    return (Decimal(micros) / MICROS_PER_UNIT).quantize(_MICRO)


def split_exact(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` micros into ``len(weights)`` non-negative parts proportional to
    ``weights`` whose sum is exactly ``total`` (largest-remainder method).

    Weights are quantised to integers first, so the result is deterministic and
    independent of float summation order. Non-finite weights count as zero (as in
    the allocation shaping); all-zero weights split evenly.
    """
    n = len(weights)
    if n == 0:
        if total:
            raise InvalidAmount("cannot split a non-zero amount into zero parts")
        return []
    if total < 0:
        raise InvalidAmount(f"cannot split a negative amount ({total})")
    ints = [max(0, round(w * _WEIGHT_SCALE)) if math.isfinite(w) else 0 for w in weights]
    wsum = sum(ints)
    if wsum == 0:
        ints = [1] * n
        wsum = n
    parts = [total * w // wsum for w in ints]
    remainder = total - sum(parts)
    if remainder:
        # Hand out leftover micros to the largest fractional remainders; ties go to the
        # earlier index so the result is deterministic.
        order = sorted(range(n), key=lambda i: (-((total * ints[i]) % wsum), i))
        for i in order[:remainder]:
            parts[i] += 1
    return parts
