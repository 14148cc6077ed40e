"""Secrets are a type: their str/repr never show the value, and the log filter masks them."""

from __future__ import annotations

import logging
import threading
from typing import Final

REDACTED: Final = "[MASKED]"

# Values shorter than this are not masked in logs: masking "ab" everywhere would garble the
# log without protecting anything (AWS's own minimum External ID length is 2).
_MIN_MASK_LEN: Final = 4


class Secret:
    """A value that must never be printed. Call `reveal()` only where the value is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:  # pickling would write the value somewhere
        raise TypeError("Secret values cannot be pickled")


_registered: set[str] = set()
_lock = threading.Lock()


def register(value: str) -> None:
    """Remember a secret value so that `mask` removes it from any text."""
    if len(value) >= _MIN_MASK_LEN:
        with _lock:
            _registered.add(value)


def mask(text: str) -> str:
    """Replace every registered secret in `text`, longest first (a secret may contain another)."""
    with _lock:
        values = sorted(_registered, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class MaskingFilter(logging.Filter):
    """Masks registered secrets in every record, whatever logger or library emitted it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are only printed in debug mode; still never with a secret in them.
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
