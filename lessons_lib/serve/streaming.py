"""Server-sent events for stream=true: OpenAI `chat.completion.chunk`s as the engine's Deltas arrive.

The engine calls `Job.on_delta` on its worker thread; `open_stream` hands each Delta to the event loop with
`call_soon_threadsafe`, and `chunks` turns them into SSE lines: per choice a first chunk with the role and the
extension fields `adapter` and `route` (the same fields, with the same values, as the non-streamed answer), content
deltas (with `logprobs` when asked), a last chunk with `finish_reason` (carrying `adapter` and `route` again); then a
usage chunk with empty `choices` if `stream_options.include_usage`, then `data: [DONE]`. For `model="auto"` the
router picks inside the worker: the engine announces its choice (`Job.on_route`) before generating, and the first
chunks go out then, every chunk's `model` naming the routed adapter as the non-streamed answer's does.

Tool calls stream in OpenAI's shape: under tool_choice "required" or a named function (schema-constrained, so the
reply is a call) a first `tool_calls` delta carries the id and the name as soon as the model has written the name,
then the arguments follow in pieces as they are generated (finish_reason "tool_calls"; "length" leaves the call
partial, as OpenAI's does). Under "auto" text that may still become a call is held back until the choice ends, then
sent as one `tool_calls` delta if it is a valid call (or a call the token limit cut: the partial call, finish
"length"), else as content; a cut call whose name is not even written sends nothing (tooling.read_reply). A held
reply that began a call and does not validate is decoded again under the schemas first (`settle`), as the
non-streamed answer is.
A client that disconnects sets `job.cancelled`: the engine drops its rows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from ..i18n import tr
from .tooling import CALL_HEAD, ToolPlan, call_id, may_become_call, read_reply

DONE = b"data: [DONE]\n\n"
_FINISHED = object()


@dataclass(frozen=True)
class Routed:
    """The engine's word on who answers a job: the public adapter name and the route (model="auto" only)."""

    adapter: str
    route: dict | None


def sse(data: dict) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def logprobs_field(entries: list[dict] | None) -> dict | None:
    """OpenAI's `logprobs` object of a choice (or chunk): {"content": [...], "refusal": None}."""
    return None if entries is None else {"content": entries, "refusal": None}


@dataclass
class ChoiceStream:
    """What one choice has sent so far, and the text held back while it may still become a tool call."""

    index: int
    plan: ToolPlan | None
    started: bool = False
    sent: str = ""
    held: str = ""
    held_logprobs: list[dict] = field(default_factory=list)
    holding: bool = True
    call: dict | None = None  # the streamed tool call's header, once sent
    arguments_start: int = 0  # where the arguments begin in `held`
    arguments_sent: str = ""

    def __post_init__(self):
        self.holding = self.plan is not None


class Chunks:
    """Builds the chunks of one streamed completion."""

    def __init__(self, completion_id: str, model: str, adapter: str | None, include_usage: bool, logprobs: bool):
        self.id, self.created, self.model = completion_id, int(time.time()), model
        self.adapter, self.include_usage, self.logprobs = adapter, include_usage, logprobs
        self.route: dict | None = None

    def chunk(
        self, index: int, delta: dict, finish_reason: str | None = None, logprobs: list[dict] | None = None, **extra
    ) -> bytes:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": index,
                    "delta": delta,
                    "finish_reason": finish_reason,
                    "logprobs": logprobs_field(logprobs) if self.logprobs else None,
                }
            ],
            **extra,
        }
        if self.include_usage:
            body["usage"] = None
        return sse(body)

    def start(self, state: ChoiceStream) -> list[bytes]:
        """The choice's first chunk (role; who answers, when known) if it has not gone out yet."""
        if state.started:
            return []
        state.started = True
        extra = {"adapter": self.adapter, "route": self.route} if self.adapter is not None else {}
        return [self.chunk(state.index, {"role": "assistant", "content": ""}, **extra)]

    def routed(self, states: list[ChoiceStream], routed: Routed) -> list[bytes]:
        """Every choice's first chunk, naming who answers, as soon as the engine has chosen (before any text).

        A later announcement (a job re-run alone after its batch failed) changes nothing already sent.
        """
        if any(state.started for state in states):
            return []
        self.adapter, self.route, self.model = routed.adapter, routed.route, routed.adapter
        return [piece for state in states for piece in self.start(state)]

    def text(self, state: ChoiceStream, text: str, logprobs: list[dict] | None) -> list[bytes]:
        """A content delta (empty deltas without logprobs are not sent)."""
        if not text and not logprobs:
            return []
        state.sent += text
        return [self.chunk(state.index, {"content": text}, logprobs=logprobs)]

    def feed(self, state: ChoiceStream, text: str, logprobs: list[dict] | None) -> list[bytes]:
        """New text of a choice: sent at once, or held while it may still be a tool call."""
        out = self.start(state)
        if not state.holding:
            return out + self.text(state, text, logprobs)
        state.held += text
        state.held_logprobs += logprobs or []
        if state.plan.constrained:
            return out + self.call_pieces(state)
        if may_become_call(state.held, state.plan):
            return out
        state.holding = False
        out += self.text(state, state.held, state.held_logprobs or None)
        state.held, state.held_logprobs = "", []
        return out

    def call_pieces(self, state: ChoiceStream) -> list[bytes]:
        """A constrained call as it is generated: the header once the name is written, then the arguments, holding
        back from the last `}` (it may be the call's own closing brace, which is not part of the arguments)."""
        out = []
        if state.call is None:
            head = CALL_HEAD.match(state.held)
            if head is None:
                return out
            state.call, state.arguments_start = {"id": call_id(), "name": head.group(1)}, head.end()
            out.append(
                self.chunk(
                    state.index,
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": state.call["id"],
                                "type": "function",
                                "function": {"name": state.call["name"], "arguments": ""},
                            }
                        ]
                    },
                    logprobs=self.take_logprobs(state),
                )
            )
        written = state.held[state.arguments_start :]
        ready = written[: written.rfind("}")] if "}" in written else written
        if len(ready) > len(state.arguments_sent):
            out.append(self.arguments(state, ready[len(state.arguments_sent) :]))
            state.arguments_sent = ready
        return out

    def arguments(self, state: ChoiceStream, piece: str) -> bytes:
        return self.chunk(
            state.index,
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
            logprobs=self.take_logprobs(state),
        )

    @staticmethod
    def take_logprobs(state: ChoiceStream) -> list[dict] | None:
        entries, state.held_logprobs = state.held_logprobs or None, []
        return entries

    def finish(self, state: ChoiceStream, choice, adapter: str, route: dict | None) -> list[bytes]:
        """The choice's end: the rest of its text (or its tool call), then the chunk with finish_reason.

        What goes out is what the non-streamed answer holds (tooling.read_reply): a call the token limit cut comes
        as a call with its partial arguments, or as nothing when not even its name was written, never as text."""
        out = self.start(state)
        reading = read_reply(choice.text, choice.finish_reason, state.plan)
        if state.call is not None:  # a streamed call: its last argument pieces
            out += self.rest_of_call(state, reading)
        elif reading.tool_calls:
            calls = [{"index": k, **call} for k, call in enumerate(reading.tool_calls)]
            out.append(self.chunk(state.index, {"tool_calls": calls}, logprobs=self.take_logprobs(state)))
        else:
            content = reading.content or ""
            rest = content[len(state.sent) :] if content.startswith(state.sent) else ""
            out += self.text(state, rest, self.take_logprobs(state))
        return out + [self.chunk(state.index, {}, reading.finish_reason, adapter=adapter, route=route)]

    def rest_of_call(self, state: ChoiceStream, reading) -> list[bytes]:
        """The argument pieces of a streamed call not sent yet (with any logprobs still held)."""
        full = reading.tool_calls[0]["function"]["arguments"] if reading.tool_calls else state.arguments_sent
        rest = full[len(state.arguments_sent) :] if full.startswith(state.arguments_sent) else ""
        return [self.arguments(state, rest)] if rest or state.held_logprobs else []

    def usage(self, usage: dict) -> bytes:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage,
            }
        )


def open_stream(engine, job) -> tuple[asyncio.Queue, object]:
    """Submit `job` with an on_delta that feeds an asyncio queue on this loop; returns (queue, future).

    The queue gets the engine's Routed (who answers), every Delta in order, then a sentinel once the job's future is
    done.
    """
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def put(item) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is shutting down and nobody reads this stream
            job.cancelled.set()

    job.on_delta = put
    job.on_route = lambda adapter, route: put(Routed(adapter, route))
    future = engine.submit(job)
    future.add_done_callback(lambda _: put(_FINISHED))
    return events, future


async def chunks(
    events: asyncio.Queue,
    future,
    job,
    writer: Chunks,
    n: int,
    plan: ToolPlan | None,
    timeout_s: float,
    failure,
    settle: Callable[[object, set[int]], Awaitable[object]] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body of one streamed request; `failure(exception) -> error dict` words an engine failure, and
    `settle(answer, indices)` may decode again the choices (among `indices`: those that sent nothing yet) that began a
    broken call under tool_choice "auto" (app.Server.settle)."""
    states = [ChoiceStream(i, plan) for i in range(n)]
    done = False
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            item = await asyncio.wait_for(events.get(), max(deadline - time.monotonic(), 0.001))
            if item is _FINISHED:
                break
            if isinstance(item, Routed):
                for piece in writer.routed(states, item):
                    yield piece
                continue
            for piece in writer.feed(states[item.index], item.text, item.logprobs):
                yield piece
        if future.exception() is not None:
            yield sse(failure(future.exception()))
        else:
            answer = first = future.result()
            if settle is not None:
                unsent = {state.index for state in states if not state.sent and state.call is None}
                answer = await asyncio.wait_for(settle(answer, unsent), max(deadline - time.monotonic(), 0.001))
                for state, before, after in zip(states, first.choices, answer.choices):
                    if after is not before:  # decoded again: its logprobs, not the discarded decode's
                        state.held_logprobs = list(after.logprobs or [])
            for state, choice in zip(states, answer.choices):
                for piece in writer.finish(state, choice, answer.adapter, answer.route):
                    yield piece
            if writer.include_usage:
                yield writer.usage(usage_of(answer))
        yield DONE
        done = True
    except asyncio.TimeoutError:
        late = tr(en=f"no answer within {timeout_s:.0f} s", ru=f"нет ответа за {timeout_s:.0f} с")
        yield sse(failure(TimeoutError(late)))
        yield DONE
    finally:
        if not done:
            job.cancelled.set()  # the client went away (or timed out): the engine drops the job's rows


def usage_of(answer) -> dict:
    """OpenAI's usage object: completion tokens summed over the choices."""
    completion = sum(c.completion_tokens for c in answer.choices) if answer.choices else answer.completion_tokens
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
    }
