"""Turning handler inputs and outputs into bytes and back: JSON by default, models from hints."""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from typing import Any, Generic, Protocol, TypeVar

import orjson

T = TypeVar("T")


class Serde(Protocol[T]):
    """Encodes values of one type to bytes and back."""

    def serialize(self, value: T) -> bytes: ...

    def deserialize(self, data: bytes) -> T: ...


class BytesSerde:
    """Raw bytes, passed through untouched."""

    def serialize(self, value: bytes) -> bytes:
        return bytes(value)

    def deserialize(self, data: bytes) -> bytes:
        return data


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; dataclasses and pydantic models become objects."""
    try:
        return orjson.dumps(value, default=_to_jsonable, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library writes them.
        text = json.dumps(value, separators=(",", ":"), default=_to_jsonable, ensure_ascii=False)
        return text.encode()


def loads(data: bytes | str) -> Any:
    """Parses JSON; on malformed input the error is the standard library's, whose messages
    ("Expecting value: line 1 column 1 (char 0)") say what was expected where."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        json.loads(data)  # raises the standard library's error
        raise  # both parsers reject the same documents; this is in case one does not


class JsonSerde(Generic[T]):
    """JSON for plain values (dict, list, str, numbers, None)."""

    def serialize(self, value: T) -> bytes:
        if value is None:
            return b""
        return dumps(value)

    def deserialize(self, data: bytes) -> T:
        if not data:
            return None  # type: ignore[return-value]
        return typing.cast(T, loads(data))


class DataclassSerde(Generic[T]):
    """JSON objects converted to and from a dataclass."""

    def __init__(self, cls: type[T]) -> None:
        self._cls = cls

    def serialize(self, value: T) -> bytes:
        return dumps(_to_jsonable(value))

    def deserialize(self, data: bytes) -> T:
        raw = loads(data) if data else None
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object for {self._cls.__name__}")
        return self._cls(**raw)


class PydanticSerde(Generic[T]):
    """JSON validated by a pydantic model."""

    def __init__(self, model: type[T]) -> None:
        self._model: Any = model

    def serialize(self, value: T) -> bytes:
        return typing.cast(bytes, typing.cast(Any, value).model_dump_json().encode())

    def deserialize(self, data: bytes) -> T:
        return typing.cast(T, self._model.model_validate_json(data or b"null"))


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def serde_for(annotation: Any) -> Serde[Any]:
    """Picks the serde that fits a type hint: bytes raw, dataclasses, pydantic models, else JSON.

    Serdes hold no per-value state, so one per hint is kept (`ctx.set` and `ctx.emit` ask for
    every value they write)."""
    try:
        return _serde_for_hashable(annotation)
    except TypeError:  # an unhashable hint, such as Annotated with unhashable metadata
        return _new_serde_for(annotation)


@functools.lru_cache(maxsize=1024)
def _serde_for_hashable(annotation: Any) -> Serde[Any]:
    return _new_serde_for(annotation)


def _new_serde_for(annotation: Any) -> Serde[Any]:
    if annotation is bytes:
        return BytesSerde()
    if isinstance(annotation, type):
        if dataclasses.is_dataclass(annotation):
            return DataclassSerde(annotation)
        if hasattr(annotation, "model_validate_json"):
            return PydanticSerde(annotation)
    return JsonSerde()


DEFAULT_SERDE: Serde[Any] = JsonSerde()
