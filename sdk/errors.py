"""Errors a handler raises or sees, with the HTTP-style codes Restate uses."""

from __future__ import annotations


class TerminalError(Exception):
    """Ends an invocation without retrying; reaches the caller with its code and message."""

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class JournalMismatchError(Exception):
    """The handler took a different path on replay than the journal recorded.

    Retrying cannot fix this by itself (the code changed or is not deterministic), but the
    invocation is retried anyway so that a fixed deployment can pick it up, as Restate does.
    """

    status_code = 570


CANCELLED_CODE = 409
KILLED_CODE = 409


class SuspendedError(BaseException):
    """Raised inside a handler to unwind it when its invocation suspends.

    A BaseException so that a handler's `except Exception` does not swallow it.
    """
