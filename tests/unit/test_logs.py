"""Log lines (engine/logs.py): the text and JSON formats, the level, and the two settings."""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from headway.engine.cli import build_parser
from headway.engine.config import ConfigError, load_config
from headway.engine.logs import JsonFormatter, TextFormatter, configure_logs

CREATED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC).timestamp()


def record(
    message: str, *args: Any, extra: dict[str, Any] | None = None, exc_info: Any = None
) -> logging.LogRecord:
    """A record as `logging.getLogger("headway.invoker").warning(...)` makes it, at CREATED."""
    made = logging.getLogger("headway.invoker").makeRecord(
        "headway.invoker", logging.WARNING, "invoker.py", 263, message, args, exc_info,
        extra=extra,
    )  # fmt: skip
    made.created = CREATED
    return made


FIELDS = {"invocation_id": "inv_1abc", "attempt": 2, "reason": "timed out", "services": ["A", "B"]}
# The first three keys of a JSON line for `record(...)`'s record.
RECORD_KEYS = {"time": "2024-05-06T07:08:09.123Z", "level": "WARNING", "logger": "headway.invoker"}


def failure() -> tuple[ValueError, Any]:
    try:
        raise ValueError("bad input")
    except ValueError as e:
        return e, (type(e), e, e.__traceback__)


def test_text_line_has_time_level_logger_message_then_the_fields() -> None:
    line = TextFormatter().format(record("attempt %d failed", 2, extra=FIELDS))
    assert line == (
        "2024-05-06T07:08:09.123Z WARNING headway.invoker: attempt 2 failed "
        'invocation_id=inv_1abc attempt=2 reason="timed out" services=["A","B"]'
    )


def test_text_line_stays_one_line_with_a_multiline_message_and_an_exception() -> None:
    error, exc_info = failure()
    line = TextFormatter().format(record("first\nsecond", exc_info=exc_info))
    expected_exception = "".join(traceback.format_exception(error)).rstrip("\n")
    assert expected_exception.startswith("Traceback (most recent call last):\n")
    assert expected_exception.endswith("\nValueError: bad input")
    assert line == (
        "2024-05-06T07:08:09.123Z WARNING headway.invoker: first\\nsecond "
        f"exception={json.dumps(expected_exception)}"
    )
    assert "\n" not in line


def test_json_line_has_the_four_keys_then_the_fields() -> None:
    line = JsonFormatter().format(record("attempt %d failed", 2, extra=FIELDS))
    assert "\n" not in line
    assert json.loads(line) == {
        **RECORD_KEYS,
        "message": "attempt 2 failed",
        **FIELDS,
    }
    assert list(json.loads(line))[:4] == ["time", "level", "logger", "message"]


def test_json_line_carries_the_exception_text() -> None:
    error, exc_info = failure()
    line = JsonFormatter().format(record("failed\nbadly", exc_info=exc_info))
    assert "\n" not in line
    assert json.loads(line) == {
        **RECORD_KEYS,
        "message": "failed\nbadly",
        "exception": "".join(traceback.format_exception(error)).rstrip("\n"),
    }


def test_json_fields_never_replace_the_four_keys_and_odd_values_become_strings() -> None:
    line = JsonFormatter().format(record("m", extra={"level": "x", "path": Path("/data")}))
    assert json.loads(line) == {
        **RECORD_KEYS,
        "message": "m",
        "path": "/data",
    }


@pytest.fixture
def headway_logger() -> Iterator[logging.Logger]:
    """The `headway` logger, put back as it was afterwards."""
    logger = logging.getLogger("headway")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_configure_logs_writes_events_at_the_level_and_above(
    headway_logger: logging.Logger,
) -> None:
    stream = io.StringIO()
    configure_logs("json", "warning", stream)
    child = logging.getLogger("headway.commit")
    child.info("not written")
    child.warning("group commit failed", extra={"entries": 3})
    headway_logger.error("stopped")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [{k: v for k, v in e.items() if k != "time"} for e in events] == [
        {"level": "WARNING", "logger": "headway.commit", "message": "group commit failed",
         "entries": 3},
        {"level": "ERROR", "logger": "headway", "message": "stopped"},
    ]  # fmt: skip
    assert headway_logger.propagate is False


def test_json_line_carries_the_stack_when_asked_for(headway_logger: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logs("json", "info", stream)
    headway_logger.info("where am I", stack_info=True)
    event = json.loads(stream.getvalue())
    assert event["message"] == "where am I"
    assert event["stack"].startswith("Stack (most recent call last):\n")
    assert "in test_json_line_carries_the_stack_when_asked_for" in event["stack"]


def test_configure_logs_text_at_debug(headway_logger: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logs("text", "debug", stream)
    logging.getLogger("headway.kafka").debug("offset commit failed", extra={"partition": 0})
    [line] = stream.getvalue().splitlines()
    assert line.endswith(" DEBUG headway.kafka: offset commit failed partition=0")
    assert datetime.fromisoformat(line.split(" ")[0]).tzinfo == UTC


def test_settings_default_to_text_at_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWAY_LOG_FORMAT", raising=False)
    monkeypatch.delenv("HEADWAY_LOG_LEVEL", raising=False)
    config = load_config()
    assert (config.log_format, config.log_level) == ("text", "info")


def test_settings_from_env_file_and_option_in_any_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HEADWAY_LOG_FORMAT", "JSON")
    monkeypatch.delenv("HEADWAY_LOG_LEVEL", raising=False)
    toml = tmp_path / "headway.toml"
    toml.write_text('[engine]\nlog_level = "Warning"\n')
    config = load_config(toml)
    assert (config.log_format, config.log_level) == ("json", "warning")
    config = load_config(toml, {"log_level": "DEBUG"})
    assert (config.log_format, config.log_level) == ("json", "debug")


@pytest.mark.parametrize(
    ("env", "file", "option", "message"),
    [
        ({"HEADWAY_LOG_FORMAT": "xml"}, "", {},
         "HEADWAY_LOG_FORMAT: log_format must be one of text, json, got 'xml'"),
        ({"HEADWAY_LOG_LEVEL": "loud"}, "", {},
         "HEADWAY_LOG_LEVEL: log_level must be one of debug, info, warning, error, got 'loud'"),
        ({}, "log_level = 10\n", {},
         "{path}: log_level must be one of debug, info, warning, error, got 10"),
        ({}, "", {"log_format": "logfmt"},
         "option: log_format must be one of text, json, got 'logfmt'"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    file: str,
    option: dict[str, str],
    message: str,
) -> None:
    for name in ("HEADWAY_LOG_FORMAT", "HEADWAY_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    toml = tmp_path / "headway.toml"
    toml.write_text("[engine]\n" + file)
    with pytest.raises(ConfigError) as raised:
        load_config(toml, option)
    assert str(raised.value) == message.format(path=toml)


@pytest.mark.parametrize("command", [["dev", "app.py"], ["server"]])
def test_engine_commands_take_both_as_options(command: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args([*command, "--log-format", "json", "--log-level", "debug"])
    assert (args.log_format, args.log_level) == ("json", "debug")
    defaults = parser.parse_args(command)
    assert (defaults.log_format, defaults.log_level) == (None, None)


def test_help_shows_the_choices_env_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "--log-format text|json log lines on stderr, one per event: text for people, json for "
        "machines (env HEADWAY_LOG_FORMAT, default text)"
    ) in help_text
    assert (
        "--log-level debug|info|warning|error least severe level of log lines written "
        "(env HEADWAY_LOG_LEVEL, default info)"
    ) in help_text
