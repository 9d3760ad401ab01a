"""What a handler sees: the context interfaces and durable futures.

The machinery behind them lives in `server_context.py` and `state_machine.py`; this module
only says what handlers may call, with names that mirror the official Restate Python SDK.
"""

from __future__ import annotations

import abc
import dataclasses
import random
import uuid
from collections.abc import Awaitable, Callable, Generator
from datetime import timedelta
from typing import Any, Generic, TypeVar

from .definitions import RetryPolicy

T = TypeVar("T")


class Request:
    """The invocation being run: its id, headers, raw body and, for Kafka, record metadata.

    `id` may be given as a function that derives it: a Kafka record's id is worked out only if
    the handler reads it (see `ids.record_invocation_id`).
    """

    __slots__ = ("_id", "attempt", "body", "headers", "kafka")

    def __init__(
        self,
        id: str | Callable[[], str],
        headers: dict[str, str],
        body: bytes,
        attempt: int = 0,
        kafka: dict[str, Any] | None = None,
    ) -> None:
        self._id = id
        self.headers = headers
        self.body = body
        self.attempt = attempt
        self.kafka = kafka

    @property
    def id(self) -> str:
        if not isinstance(self._id, str):
            self._id = self._id()
        return self._id

    def __repr__(self) -> str:
        return (
            f"Request(id={self.id!r}, headers={self.headers!r}, body={self.body!r}, "
            f"attempt={self.attempt!r}, kafka={self.kafka!r})"
        )


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Retries of one `ctx.run` step; when exhausted the step fails with a TerminalError."""

    retry_policy: RetryPolicy = dataclasses.field(
        default_factory=lambda: RetryPolicy(max_attempts=None)
    )
    serde: Any = None
    type_hint: Any = None


class DurableFuture(abc.ABC, Generic[T]):
    """An awaitable whose result comes from the journal: the same on every replay."""

    @abc.abstractmethod
    def __await__(self) -> Generator[Any, None, T]: ...

    @abc.abstractmethod
    def done(self) -> bool: ...


class SendHandle(abc.ABC):
    """What a one-way send returns: the id of the invocation it started."""

    @abc.abstractmethod
    async def invocation_id(self) -> str: ...


class DurablePromise(abc.ABC, Generic[T]):
    """A workflow's named promise, resolved once by any of its handlers or from outside."""

    @abc.abstractmethod
    def value(self) -> DurableFuture[T]: ...

    @abc.abstractmethod
    async def peek(self) -> T | None: ...

    @abc.abstractmethod
    async def resolve(self, value: T) -> None: ...

    @abc.abstractmethod
    async def reject(self, message: str, code: int = 500) -> None: ...


class Context(abc.ABC):
    """The context of a service handler."""

    @abc.abstractmethod
    def request(self) -> Request: ...

    @abc.abstractmethod
    def run(
        self,
        name: str,
        action: Callable[..., T] | Callable[..., Awaitable[T]],
        *args: Any,
        options: RunOptions | None = None,
    ) -> DurableFuture[T]:
        """Runs `action` once; its result (or terminal failure) is journaled and replayed."""

    @abc.abstractmethod
    def sleep(self, delta: timedelta, name: str | None = None) -> DurableFuture[None]: ...

    @abc.abstractmethod
    def service_call(
        self,
        tpe: Any,
        arg: Any = None,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> DurableFuture[Any]: ...

    @abc.abstractmethod
    def object_call(
        self,
        tpe: Any,
        key: str,
        arg: Any = None,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> DurableFuture[Any]: ...

    @abc.abstractmethod
    def workflow_call(
        self,
        tpe: Any,
        key: str,
        arg: Any = None,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> DurableFuture[Any]: ...

    @abc.abstractmethod
    def service_send(
        self,
        tpe: Any,
        arg: Any = None,
        *,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def object_send(
        self,
        tpe: Any,
        key: str,
        arg: Any = None,
        *,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def workflow_send(
        self,
        tpe: Any,
        key: str,
        arg: Any = None,
        *,
        send_delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def generic_call(
        self, service: str, handler: str, arg: bytes, key: str | None = None
    ) -> DurableFuture[bytes]: ...

    @abc.abstractmethod
    def generic_send(
        self,
        service: str,
        handler: str,
        arg: bytes,
        key: str | None = None,
        send_delay: timedelta | None = None,
    ) -> SendHandle: ...

    @abc.abstractmethod
    def awakeable(self, type_hint: Any = None) -> tuple[str, DurableFuture[Any]]: ...

    @abc.abstractmethod
    def resolve_awakeable(self, name: str, value: Any) -> None: ...

    @abc.abstractmethod
    def reject_awakeable(
        self, name: str, failure_message: str, failure_code: int = 500
    ) -> None: ...

    @abc.abstractmethod
    def cancel_invocation(self, invocation_id: str) -> None: ...

    @abc.abstractmethod
    def emit(
        self,
        topic: str,
        value: Any,
        key: str | bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
        cluster: str | None = None,
    ) -> None:
        """Publishes a record to a Kafka topic when this invocation completes successfully."""

    @abc.abstractmethod
    def random(self) -> random.Random:
        """A generator seeded from the invocation id: the same values on every replay."""

    @abc.abstractmethod
    def uuid(self) -> uuid.UUID: ...

    @abc.abstractmethod
    async def time(self) -> float:
        """Wall-clock seconds since the epoch, journaled so replays see the same value."""


class ObjectSharedContext(Context):
    """The context of a virtual object's shared handler: reads its key's state."""

    @abc.abstractmethod
    def key(self) -> str: ...

    @abc.abstractmethod
    async def get(self, name: str, type_hint: Any = None) -> Any: ...

    @abc.abstractmethod
    async def state_keys(self) -> list[str]: ...


class ObjectContext(ObjectSharedContext):
    """The context of an exclusive handler: the only writer of its key's state."""

    @abc.abstractmethod
    def set(self, name: str, value: Any) -> None: ...

    @abc.abstractmethod
    def clear(self, name: str) -> None: ...

    @abc.abstractmethod
    def clear_all(self) -> None: ...


class WorkflowSharedContext(ObjectSharedContext):
    """The context of a workflow's shared handlers: state reads and its promises."""

    @abc.abstractmethod
    def promise(self, name: str, type_hint: Any = None) -> DurablePromise[Any]: ...


class WorkflowContext(ObjectContext, WorkflowSharedContext):
    """The context of a workflow's `run` handler."""
