"""Typed errors shared by every layer.

Every error a caller can cause derives from :class:`PacerError` *and* from the builtin
exception a Python user would expect (``ValueError`` for a bad value, ``TypeError`` for a
wrong type, ``LookupError`` for an unknown name), so ``except ValueError`` keeps working
for code written against the original Budget Pacer.
"""

from __future__ import annotations


class PacerError(Exception):
    """Base of every error pacer-stream raises on purpose."""

    code: str = "pacer_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgument(PacerError, ValueError):
    """A value has the right type but is not acceptable (negative amount, NaN, ...)."""

    code = "invalid_argument"


class InvalidAmount(InvalidArgument):
    code = "invalid_amount"


class InvalidBudget(InvalidArgument):
    code = "invalid_budget"


class InvalidTime(InvalidArgument):
    code = "invalid_time"


class WrongType(PacerError, TypeError):
    """A value of the wrong type was passed (a float where a Decimal is required, ...)."""

    code = "wrong_type"


class UnknownCampaign(PacerError, LookupError):
    code = "unknown_campaign"


class UnknownChannel(PacerError, LookupError):
    code = "unknown_channel"


class InvalidRecord(PacerError, ValueError):
    """A wire record that cannot be accepted; ``code`` is stable and goes to the DLQ."""

    code = "invalid_record"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
