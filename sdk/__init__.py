"""Headway's SDK: what handlers are written with. Names mirror the Restate Python SDK."""

from .combinators import as_completed, gather, select
from .context import (
    Context,
    DurableFuture,
    DurablePromise,
    ObjectContext,
    ObjectSharedContext,
    Request,
    RunOptions,
    SendHandle,
    WorkflowContext,
    WorkflowSharedContext,
)
from .definitions import HandlerOptions, RetryPolicy, Service, VirtualObject, Workflow
from .errors import JournalMismatchError, TerminalError

__all__ = [
    "Context",
    "DurableFuture",
    "DurablePromise",
    "HandlerOptions",
    "JournalMismatchError",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "RetryPolicy",
    "RunOptions",
    "SendHandle",
    "Service",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "as_completed",
    "gather",
    "select",
]
