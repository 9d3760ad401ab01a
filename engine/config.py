"""Engine settings, each declared once with its type, default, environment variable and doc.

Precedence: command-line option, then environment variable, then `headway.toml`, then default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from headway.connectors.kafka.clusters import KafkaCluster, clusters_from_toml
from headway.connectors.kafka.uris import SubscriptionError

from .logs import LOG_FORMATS, LOG_LEVELS


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    env: str
    doc: str
    # For a setting that is one of a few words: any case is accepted, kept in lower case.
    choices: tuple[str, ...] = ()


SETTINGS: list[Setting] = [
    Setting("data_dir", Path, Path(".headway"), "HEADWAY_DATA_DIR",
            "where the log and the partition store live"),
    Setting("ingress_host", str, "127.0.0.1", "HEADWAY_INGRESS_HOST",
            "address the HTTP ingress listens on"),
    Setting("ingress_port", int, 8080, "HEADWAY_INGRESS_PORT", "port of the HTTP ingress"),
    Setting("admin_host", str, "127.0.0.1", "HEADWAY_ADMIN_HOST",
            "address the admin API listens on"),
    Setting("admin_port", int, 9070, "HEADWAY_ADMIN_PORT", "port of the admin API"),
    Setting("max_body_bytes", int, 10 * 1024 * 1024, "HEADWAY_MAX_BODY_BYTES",
            "largest request body the ingress accepts (larger ones get 413)"),
    Setting("suspend_after", float, 1.0, "HEADWAY_SUSPEND_AFTER",
            "seconds an attempt may wait only on completions before it suspends"),
    Setting("always_replay", bool, False, "HEADWAY_ALWAYS_REPLAY",
            "test mode: suspend and replay every invocation after each step"),
    Setting("express", bool, True, "HEADWAY_EXPRESS",
            "run in-process handlers that only use state and emits ahead of the log (one log "
            "entry per invocation); off, or with always_replay: every invocation runs durably"),
    Setting("max_batch", int, 4096, "HEADWAY_MAX_BATCH",
            "most log entries in one group commit"),
    Setting("outbox_commit_interval", float, 0.1, "HEADWAY_OUTBOX_COMMIT_INTERVAL",
            "seconds between Kafka transactions of the outbox shipper, at most"),
    Setting("outbox_max_records", int, 10_000, "HEADWAY_OUTBOX_MAX_RECORDS",
            "most outbox records in one Kafka transaction"),
    Setting("metrics", bool, True, "HEADWAY_METRICS",
            "count Prometheus metrics for GET /metrics (off: no per-batch counting at all)"),
    Setting("otlp_endpoint", str, "", "HEADWAY_OTLP_ENDPOINT",
            "OpenTelemetry collector to send traces to (OTLP/HTTP base URL); empty: no tracing"),
    Setting("trace_sample_ratio", float, 1.0, "HEADWAY_TRACE_SAMPLE_RATIO",
            "share of new traces recorded, 0 to 1 (a caller's traceparent decides for its own)"),
    Setting("log_format", str, "text", "HEADWAY_LOG_FORMAT",
            "log lines on stderr, one per event: text for people, json for machines", LOG_FORMATS),
    Setting("log_level", str, "info", "HEADWAY_LOG_LEVEL",
            "least severe level of log lines written", LOG_LEVELS),
    Setting("max_protocol_version", int, 7, "HEADWAY_MAX_PROTOCOL_VERSION",
            "newest service protocol version offered to deployments (5 to 7)"),
    Setting("eager_state_limit", int, 32 * 1024 * 1024, "HEADWAY_EAGER_STATE_LIMIT",
            "bytes of an object's state sent to a deployment up front (keys and values, in "
            "key order); it reads the rest lazily. 0: none"),
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
    data_dir: Path = Path(".headway")
    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9070
    max_body_bytes: int = 10 * 1024 * 1024
    suspend_after: float = 1.0
    always_replay: bool = False
    express: bool = True
    max_batch: int = 4096
    outbox_commit_interval: float = 0.1
    outbox_max_records: int = 10_000
    kafka_clusters: tuple[KafkaCluster, ...] = ()
    metrics: bool = True
    otlp_endpoint: str = ""
    trace_sample_ratio: float = 1.0
    log_format: str = "text"
    log_level: str = "info"
    max_protocol_version: int = 7
    eager_state_limit: int = 32 * 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value of the wrong kind; the message names it."""


def _convert(setting: Setting, raw: Any, origin: str) -> Any:
    if setting.choices:
        word = str(raw).lower()
        if word not in setting.choices:
            choices = ", ".join(setting.choices)
            raise ConfigError(f"{origin}: {setting.name} must be one of {choices}, got {raw!r}")
        return word
    try:
        if setting.type is bool and isinstance(raw, str):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        return setting.type(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: {setting.name} must be a {setting.type.__name__}, got {raw!r}"
        ) from None


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Builds the config from `headway.toml`, the environment and explicit overrides."""
    values: dict[str, Any] = {}
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
            file_values = document.get("engine", {})
            values["kafka_clusters"] = clusters_from_toml(document.get("kafka"), str(path))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, SubscriptionError) as e:
            raise ConfigError(f"{path}: {e}") from None
    for setting in SETTINGS:
        if overrides and overrides.get(setting.name) is not None:
            values[setting.name] = _convert(setting, overrides[setting.name], "option")
        elif setting.env in os.environ:
            values[setting.name] = _convert(setting, os.environ[setting.env], setting.env)
        elif setting.name in file_values:
            values[setting.name] = _convert(setting, file_values[setting.name], str(path))
    return Config(**values)
