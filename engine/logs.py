"""The engine's log lines: one line per event on stderr, as text for people or JSON for machines.

Every module logs through a `headway.*` logger; `configure_logs` gives the `headway` logger one
stderr handler, so a process running an engine writes its events (start-up lines included) in
one format. Structured fields are the `extra={...}` of a logging call: every attribute of a
`LogRecord` that the standard library does not set itself.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

# What every LogRecord carries without `extra` (Python 3.12 adds `taskName`, found the same
# way), plus the two attributes `Formatter.format` sets on it.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
# A text value printed as it is: not empty, and nothing that would blur where it ends.
_BARE = re.compile(r'[^\s"=\\]+')
_ONE_LINE = str.maketrans({"\n": "\\n", "\r": "\\r"})


class _EventFormatter(logging.Formatter):
    """What both formats show of a record: its UTC time, its fields and its exception."""

    def timestamp(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record's structured fields, then `exception` and `stack` text when it has them."""
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return fields


class TextFormatter(_EventFormatter):
    """`TIME LEVEL LOGGER: MESSAGE key=value ...` on one line; a value with spaces, quotes or
    newlines (a traceback) is a JSON string, anything but a string is JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self.timestamp(record)} {record.levelname} {record.name}: "
            f"{record.getMessage().translate(_ONE_LINE)}"
        )
        for name, value in self.fields(record).items():
            line += f" {name}={_text_value(value)}"
        return line


class JsonFormatter(_EventFormatter):
    """One JSON object: `time`, `level`, `logger`, `message`, then the fields. A field named
    like one of those four is left out rather than overwrite it."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in self.fields(record).items():
            event.setdefault(name, value)
        return json.dumps(event, default=str)


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value if _BARE.fullmatch(value) else json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def configure_logs(log_format: str, level: str, stream: TextIO | None = None) -> None:
    """Sends the `headway` logger's events at `level` and above to `stream` (stderr), one line
    each, in `log_format` (one of `LOG_FORMATS`), and not on to the root logger.

    The CLI calls it for `headway dev` and `headway server`, beside `tune_garbage_collector`,
    rather than `runner.serve` doing it: like the collector's thresholds, logging belongs to the
    process, and a program that runs `serve` itself keeps its own logging setup. Other loggers
    (the app's own, aiohttp's, asyncio's) are left to the app.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logger = logging.getLogger("headway")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
