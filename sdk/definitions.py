"""Service definitions users write: Service, VirtualObject, Workflow and their handlers."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal

from .errors import TerminalError
from .serde import Serde, serde_for

ServiceKind = Literal["service", "object", "workflow"]
HandlerKind = Literal["exclusive", "shared", "workflow"]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for failed attempts: initial delay, factor, cap and attempt limit."""

    initial_interval: timedelta = timedelta(milliseconds=500)
    factor: float = 2.0
    max_interval: timedelta = timedelta(seconds=60)
    max_attempts: int | None = None

    def delay_after(self, failures: int) -> float:
        """Seconds to wait before the next attempt, after `failures` failed ones (>= 1)."""
        initial = self.initial_interval.total_seconds()
        cap = self.max_interval.total_seconds()
        try:
            delay = initial * self.factor ** max(failures - 1, 0)
        except OverflowError:  # ~1000 failures at factor 2: long past the cap
            return cap if initial > 0 else 0.0
        return min(delay, cap)

    def exhausted(self, failures: int) -> bool:
        return self.max_attempts is not None and failures >= self.max_attempts


@dataclasses.dataclass(frozen=True)
class HandlerOptions:
    """Options shared by services, objects, workflows and single handlers.

    One type for all three definition kinds; a handler's options override its service's
    field by field (None means "inherit").
    """

    retry_policy: RetryPolicy | None = None
    inactivity_timeout: timedelta | None = None
    abort_timeout: timedelta | None = None
    idempotency_retention: timedelta | None = None
    journal_retention: timedelta | None = None
    workflow_retention: timedelta | None = None
    ingress_private: bool | None = None

    def merged_over(self, base: HandlerOptions) -> HandlerOptions:
        """These options with unset fields taken from `base`."""
        values = {
            f.name: getattr(self, f.name)
            if getattr(self, f.name) is not None
            else getattr(base, f.name)
            for f in dataclasses.fields(self)
        }
        return HandlerOptions(**values)


HandlerFn = Callable[..., Awaitable[Any]]

HANDLER_ATTRIBUTE = "__headway_handler__"


@dataclasses.dataclass
class Handler:
    """One handler: its function, kind, serdes and options."""

    name: str
    kind: HandlerKind | None
    fn: HandlerFn
    input_serde: Serde[Any]
    output_serde: Serde[Any]
    takes_input: bool
    input_required: bool
    options: HandlerOptions

    async def call(self, ctx: Any, body: bytes, where: object) -> bytes:
        """Decodes `body`, runs the handler and encodes its result: what every transport does.

        An input that does not decode is the caller's fault: a TerminalError 400 naming `where`.
        """
        try:
            arg = self.input_serde.deserialize(body) if self.takes_input else None
        except Exception as e:
            raise TerminalError(f"cannot decode the input of {where}: {e}", 400) from e
        result = await (self.fn(ctx, arg) if self.takes_input else self.fn(ctx))
        return self.output_serde.serialize(result)


def _excludes_none(hint: Any, param: inspect.Parameter) -> bool:
    """Whether a handler's input annotation rules out None (so an empty body is an error)."""
    if hint is None or hint is Any or param.default is not inspect.Parameter.empty:
        return False
    return type(None) not in typing.get_args(hint) and hint is not type(None)


class _Definition:
    """What Service, VirtualObject and Workflow share: a name, options and handlers."""

    kind: ServiceKind

    def __init__(self, name: str, options: HandlerOptions | None = None) -> None:
        if not name or "/" in name:
            raise ValueError(f"invalid service name {name!r}")
        self.name = name
        self.options = options or HandlerOptions()
        self.handlers: dict[str, Handler] = {}

    def _register(
        self,
        fn: HandlerFn,
        name: str | None,
        kind: HandlerKind | None,
        options: HandlerOptions | None,
    ) -> Handler:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"handler {fn.__name__} must be an async function")
        params = list(inspect.signature(fn).parameters.values())
        hints = typing.get_type_hints(fn)
        takes_input = len(params) >= 2
        input_hint = hints.get(params[1].name) if takes_input else None
        handler = Handler(
            name=name or fn.__name__,
            kind=kind,
            fn=fn,
            input_serde=serde_for(input_hint),
            output_serde=serde_for(hints.get("return")),
            takes_input=takes_input,
            input_required=takes_input and _excludes_none(input_hint, params[1]),
            options=(options or HandlerOptions()).merged_over(self.options),
        )
        if handler.name in self.handlers:
            raise ValueError(f"{self.name} already has a handler named {handler.name!r}")
        self.handlers[handler.name] = handler
        # Lets ctx.service_call(fn, ...) find the target from the function itself.
        setattr(fn, HANDLER_ATTRIBUTE, (self.name, handler))
        return handler

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, handlers={sorted(self.handlers)})"


class Service(_Definition):
    """Stateless handlers, any number running at once."""

    kind: ServiceKind = "service"

    def handler(
        self, name: str | None = None, *, options: HandlerOptions | None = None
    ) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            self._register(fn, name, None, options)
            return fn

        return register


class VirtualObject(_Definition):
    """Keyed handlers with state; exclusive ones run one at a time per key."""

    kind: ServiceKind = "object"

    def handler(
        self,
        name: str | None = None,
        *,
        kind: Literal["exclusive", "shared"] = "exclusive",
        options: HandlerOptions | None = None,
    ) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            self._register(fn, name, kind, options)
            return fn

        return register


class Workflow(_Definition):
    """A `run` handler that executes exactly once per workflow id, plus shared handlers."""

    kind: ServiceKind = "workflow"

    def main(
        self, name: str | None = None, *, options: HandlerOptions | None = None
    ) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            self._register(fn, name or "run", "workflow", options)
            return fn

        return register

    def handler(
        self, name: str | None = None, *, options: HandlerOptions | None = None
    ) -> Callable[[HandlerFn], HandlerFn]:
        def register(fn: HandlerFn) -> HandlerFn:
            self._register(fn, name, "shared", options)
            return fn

        return register


ServiceDefinition = Service | VirtualObject | Workflow
