"""A remote attempt: one HTTP/1.1 request/response exchange with a deployment.

The request carries StartMessage, the input and the journal so far; the response streams the
handler's new commands, run proposals, and then its end, its suspension or an error. Each
response message becomes the same log entry the in-process invoker would submit. The input
is closed once sent, so the SDK suspends whenever it needs a completion the engine has not sent
yet (run results included, which must be durable before the handler sees them): the engine
holds no connection while an invocation waits.

Over request/response the engine cannot ask a stuck handler to suspend, so the inactivity
timeout and the abort timeout together bound the silence between two messages; past that the
request is dropped and the attempt fails with a retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from headway.sdk import ids
from headway.sdk.definitions import HandlerOptions
from headway.sdk.journal import Command, Outcome, Target, decode_command
from headway.sdk.protocol import journal_codec as codec
from headway.sdk.protocol import messages as m
from headway.sdk.protocol import versions
from headway.sdk.protocol.framing import FrameDecoder, encode_frames
from headway.sdk.protocol.signals import named_signal_slot, signal_slot
from headway.sdk.protocol.wire import ProtocolError

from .. import keys
from ..entries import Append, AttemptFailed, Complete, End, Suspend
from ..registry import DEFAULT_RETRY
from .manifest import lazy_state

if TYPE_CHECKING:
    from ..invoker import Invoker
    from .catalog import Deployment

log = logging.getLogger("headway.deployments")

DEFAULT_INACTIVITY = timedelta(seconds=60)
DEFAULT_ABORT = timedelta(seconds=60)
ALREADY_COMPLETE = -1  # a suspension on a call's invocation id: the replay carries it
FAIL_BEHAVIOR = 2


def _waiting(message: m.SuspensionMessage) -> tuple[list[int], list[int], list[str]]:
    """What a suspension waits on: V5/V6 list it, V7 describes a tree of futures.

    The engine resumes the invocation when any of them completes, which is enough to let the
    await point make progress whatever its combinators.
    """
    completions = list(message.waiting_completions)
    signals = list(message.waiting_signals)
    named = list(message.waiting_named_signals)
    pending = [message.awaiting_on] if message.awaiting_on is not None else []
    while pending:
        future = pending.pop()
        completions += future.waiting_completions
        signals += future.waiting_signals
        named += future.waiting_named_signals
        pending += future.nested_futures
    return completions, signals, named


def eager_state(state: dict[str, bytes], limit: int) -> tuple[list[m.StateEntry], bool]:
    """The state entries a StartMessage carries, in key order, while their keys and values fit
    in `limit` bytes; and whether that is partial (the SDK then reads the rest lazily)."""
    entries: list[m.StateEntry] = []
    size = 0
    for key, value in sorted(state.items()):
        raw_key = key.encode()
        size += len(raw_key) + len(value)
        if size > limit:
            return entries, True
        entries.append(m.StateEntry(raw_key, value))
    return entries, False


def _now_ms() -> int:
    return int(time.time() * 1000)


class RemoteAttempt:
    """Drives one attempt of an invocation pinned to a deployment."""

    def __init__(
        self, invoker: Invoker, session: aiohttp.ClientSession, deployment: Deployment | None,
        invocation_id: str, status: dict[str, Any], eager_state_limit: int,
    ) -> None:  # fmt: skip
        self.invoker = invoker
        self.session = session
        self.deployment = deployment
        self.invocation_id = invocation_id
        self.status = status
        self.attempt = int(status["a"])
        self.target = Target.decode(status["t"])
        self.task: asyncio.Task[None] | None = None
        self.cids = codec.CompletionIds()
        self.journal: list[Command] = []
        self.output: Outcome | None = None
        self.eager_state_limit = eager_state_limit

    def begin(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def notify(self, index: int, seq: int, outcome: Outcome) -> None:
        """Nothing to do: the input is closed, and the next attempt reads it from the store."""

    # -- the exchange ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            if self.deployment is None:
                raise ConnectionError(f"deployment {self.status['dp']} is no longer registered")
            await self._exchange(self.deployment)
        except asyncio.CancelledError:
            return
        except (aiohttp.ClientError, OSError, TimeoutError, ProtocolError) as e:
            self._failed(f"{type(e).__name__}: {e}")
        except Exception as e:  # a bug: still retry, and say what happened
            log.exception("remote attempt of %s failed", self.invocation_id)
            self._failed(f"{type(e).__name__}: {e}")

    def _options(self) -> HandlerOptions:
        """The handler's options as the pinned deployment declared them."""
        services = self.deployment.services if self.deployment is not None else []
        for info in services:
            if info.name == self.target.service and self.target.handler in info.handlers:
                return info.handlers[self.target.handler].options
        return HandlerOptions()

    def _timeouts(self) -> tuple[float, float]:
        options = self._options()
        inactivity = options.inactivity_timeout or DEFAULT_INACTIVITY
        abort = options.abort_timeout or DEFAULT_ABORT
        return inactivity.total_seconds(), abort.total_seconds()

    async def _exchange(self, deployment: Deployment) -> None:
        version = deployment.protocol
        url = f"{deployment.uri}/invoke/{self.target.service}/{self.target.handler}"
        content_type = versions.invocation_content_type(version)
        inactivity, abort = self._timeouts()
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=inactivity + abort)
        async with self.session.post(
            url, data=self._request_body(version), timeout=timeout,
            headers={"content-type": content_type, "accept": content_type},
        ) as resp:  # fmt: skip
            if resp.status != 200:
                text = (await resp.read()).decode(errors="replace").strip()[:300]
                raise ConnectionError(f"POST {url} answered {resp.status}: {text}")
            answered = versions.parse_invocation_content_type(resp.headers.get("content-type", ""))
            if answered is not None and answered != version:
                raise ProtocolError(
                    f"asked for protocol v{version}, the deployment answered v{answered}"
                )
            decoder = FrameDecoder()
            async for chunk in resp.content.iter_any():
                for message, _ in decoder.feed(chunk):
                    if self._handle(message):
                        return
            decoder.finish()
        raise ProtocolError("the deployment closed the stream without End, Suspension or Error")

    def _request_body(self, version: int) -> bytes:
        store = self.invoker.store
        inv = self.invocation_id
        self.journal = [
            decode_command(store.get(keys.journal(inv, i))) for i in range(int(self.status["jl"]))
        ]
        prefix = keys.completion_prefix(inv)
        completions: dict[int, tuple[int, Outcome]] = {}
        signal_names: dict[int, str] = {}  # a named signal's completion record ends with it
        for key, raw in store.scan(prefix):
            slot = int(key[len(prefix) :], 16)
            completions[slot] = (raw[0], Outcome.decode(raw[1]))
            if len(raw) > 2:
                signal_names[slot] = raw[2]
        state_map: list[m.StateEntry] = []
        partial = False
        if self.target.key is not None:
            lazy = self.deployment is not None and lazy_state(
                self.deployment.manifest, self.target.service, self.target.handler
            )
            if lazy:  # the manifest asks for no state up front
                partial = True
            else:
                state = store.get(keys.state(self.target.service, self.target.key)) or {}
                state_map, partial = eager_state(state, self.eager_state_limit)
        input_message = m.InputCommandMessage(
            headers=[m.Header(k, v) for k, v in dict(self.status["h"]).items()],
            value=m.Value(bytes(self.status["in"])),
        )
        entries = codec.replay_entries(
            input_message, self.journal, completions, self.cids, signal_names
        )
        raw_id = ids.invocation_id_bytes(inv)
        seed = int.from_bytes(hashlib.sha256(raw_id).digest()[:8], "big")  # stable per invocation
        start = m.StartMessage(
            id=raw_id, debug_id=inv, known_entries=len(entries),
            state_map=state_map, partial_state=partial, key=self.target.key or "",
            retry_count_since_last_stored_entry=int(self.status["rc"]),
            random_seed=seed if version >= 6 else 0,
        )  # fmt: skip
        return encode_frames([start, *entries])

    # -- response messages -----------------------------------------------------------------

    def _handle(self, message: m.Frame) -> bool:
        """Submits what `message` means; True once the attempt is over."""
        if isinstance(message, m.OutputCommandMessage):
            self.output = codec.outcome_from(message.value, message.failure)
        elif isinstance(message, m.InputCommandMessage):
            raise ProtocolError("a deployment may not send InputCommandMessage")
        elif isinstance(message, m.CommandMessage):
            self._command(message)
        elif isinstance(message, m.ProposeRunCompletionMessage):
            index = self.cids.by_id.get(message.result_completion_id)
            if index is None:
                raise ProtocolError(f"run completion {message.result_completion_id} is unknown")
            outcome = codec.outcome_from(message.value, message.failure)
            self._submit(Complete(self.invocation_id, index, outcome))
        elif isinstance(message, m.EndMessage):
            if self.output is None:
                raise ProtocolError("End without an Output command")
            self._submit(End(self.invocation_id, self.attempt, self.output))
            return True
        elif isinstance(message, m.SuspensionMessage):
            self._suspend(message)
            return True
        elif isinstance(message, m.ErrorMessage):
            if message.behavior == FAIL_BEHAVIOR:  # V7: end the invocation, no retry
                failure = Outcome.fail(message.code or 500, message.message)
                self._submit(End(self.invocation_id, self.attempt, failure))
                self._done()
            else:  # retry; pausing (V7) is not supported, so a pause retries too
                self._failed(f"{message.code}: {message.message}", message.next_retry_delay)
            return True
        elif not isinstance(message, m.AwaitingOnMessage | m.CommandAckMessage):
            raise ProtocolError(f"a deployment may not send {type(message).__name__}")
        return False

    def _command(self, message: m.CommandMessage) -> None:
        index = len(self.journal)
        command = codec.decode_command(message, self.cids.next_id, self._mint)
        self.cids.allocate(index, command)
        self.journal.append(command)
        self._submit(Append(self.invocation_id, self.attempt, index, command))

    def _mint(self, target: Target, idempotency_key: str | None) -> str:
        """A callee's invocation id, as the in-process SDK mints it."""
        found = self.invoker.registry.lookup(target.service, target.handler)
        workflow_run = found is not None and found[1].kind == "workflow"
        if idempotency_key is not None or workflow_run:
            return ids.deterministic_invocation_id(
                target.service, target.handler, target.key, idempotency_key,
                workflow_run=workflow_run,
            )  # fmt: skip
        return ids.new_invocation_id(ids.partition_key_for(target.service, target.key))

    def _suspend(self, message: m.SuspensionMessage) -> None:
        completions, signals, named = _waiting(message)
        waiting: list[int] = []
        for cid in completions:
            index = self.cids.by_id.get(cid)
            if index is None:
                raise ProtocolError(f"the suspension waits on unknown completion {cid}")
            waiting.append(ALREADY_COMPLETE if cid in self.cids.invocation_ids else index)
        waiting += [signal_slot(s) for s in signals]
        waiting += [named_signal_slot(name) for name in named]
        self._submit(Suspend(self.invocation_id, self.attempt, sorted(set(waiting))))
        self._done()

    def _submit(self, entry: Append | Complete | End | Suspend | AttemptFailed) -> None:
        self.invoker.committer.submit_nowait(entry)

    def _done(self) -> None:
        if self.invoker.attempts.get(self.invocation_id) is self:
            del self.invoker.attempts[self.invocation_id]

    def _failed(self, message: str, delay_ms: int | None = None) -> None:
        failures = int(self.status["rc"]) + 1
        policy = self._options().retry_policy or DEFAULT_RETRY
        self.invoker.retries += 1
        self._done()
        if policy.exhausted(failures):
            outcome = Outcome.fail(500, f"gave up after {failures} attempts: {message}")
            self._submit(End(self.invocation_id, self.attempt, outcome))
            return
        log.info(
            "%s attempt %d failed: %s", self.invocation_id, self.attempt, message,
            extra={"invocation_id": self.invocation_id, "attempt": self.attempt},
        )  # fmt: skip
        if delay_ms is None:
            delay_ms = int(policy.delay_after(failures) * 1000)
        self._submit(AttemptFailed(self.invocation_id, self.attempt, message, _now_ms() + delay_ms))
