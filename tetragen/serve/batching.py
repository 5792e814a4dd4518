"""One worker thread per served model, and dynamic ("continuous") batching of text generation.

Every model has one `ModelWorker`: a thread that owns the model, so nothing runs on the server's event loop and no
two requests touch one model at once. Text generation is decoded for all running requests of the model together,
one token per step: a new request is prefilled on its own and joins the batch at the next step, a finished or
cancelled one (a client that hung up) leaves it and frees its slot. Each sequence keeps its own sampling settings,
random generator, stop strings, length and context window. Requests for samples of fixed shape (images, and every
kind of content whose rows each have their own seed) are batched across requests too: `rows(items, draw)` queues a
request's rows, and the worker draws the rows of every queued request with the same `draw` function in one call of
at most `max_rows` rows (a request larger than that alone), in forward passes of exactly `max_rows` rows. Other work (fill-mask, classify) runs in the same
thread between decoding steps.

The decoding itself belongs to the model's family: a pipeline that offers batched decoding
(`tetragen.sample.tokens.BatchedDecoding`) hands the worker a `SlotDecoder`, one slot per sequence. A `generate`
pipeline without one is served one sequence at a time through its own `stream`.

Determinism: a sequence's tokens depend on its own prompt, settings and seed only, never on what else is in the
batch: a slot decoder's logits for a slot depend on that slot's tokens alone, and each sequence samples from its own
generator (`next_tokens`). The same request with the same seed gives the same text at any load (on the same machine
and software).
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import UserError
from ..sample.tokens import BatchedDecoding, SamplingParams, next_tokens, settled

log = logging.getLogger("tetragen.serve")


class QueueFull(Exception):
    """The model's queue holds `max_queue` waiting requests already."""


class Closed(Exception):
    """The worker has stopped (the server is shutting down)."""


# ----------------------------------------------------------------------------------------------------------------
# one sequence

@dataclass(eq=False)
class Sequence:
    """One text to generate: what the caller asks for, and (from the worker) its progress.

    `emit(kind, value)` is called from the worker thread: ("text", piece) any number of times, then exactly one of
    ("done", (finish_reason, completion_tokens)) or ("error", exception). Nothing is emitted after `cancel()`."""
    prompt_ids: list[int]
    max_new_tokens: int
    params: SamplingParams
    stops: list[str]
    emit: Callable[[str, Any], None]
    seed: int | None = None                             # None: a fresh random seed
    prompt: str = ""                                    # the text of prompt_ids (for a pipeline's own stream)
    decode: Callable[[list[int]], str] | None = None   # ids -> text; `submit` sets the model tokenizer's
    # worker state
    tokens: list[int] = field(default_factory=list)     # the prompt, then every generated id
    generated: list[int] = field(default_factory=list)
    emitted: int = 0                                    # characters of the generated text already sent
    slot: int = -1
    logits: torch.Tensor | None = None                  # (1, V): the distribution of the next token
    generator: torch.Generator | None = None
    finish: str | None = None                           # "stop" or "length" once it has ended
    cancelled: bool = False

    def cancel(self) -> None:
        """Stop generating (a client that disconnected or timed out); the worker frees the slot at its next step."""
        self.cancelled = True

    # text -------------------------------------------------------------------------------------------------------
    def push(self, token: int) -> str | None:
        """Add a generated token; returns the text that became final, and sets `finish` when the sequence ended.

        As `TextGenerator.stream`: text that could be the start of a stop string is held back until it is not,
        the first stop string found ends the text (it is not part of it), and a byte-level token that ends inside
        a character (decoded as U+FFFD until its other bytes come) is held back a few tokens."""
        self.tokens.append(token)
        self.generated.append(token)
        text = self.decode(self.generated)
        cut, safe = settled(text, self.emitted, self.stops)
        if cut is not None:
            self.finish = "stop"
            piece = text[self.emitted:cut]
            self.emitted = max(self.emitted, cut)
            return piece
        if len(self.generated) >= self.max_new_tokens:
            self.finish, safe = "length", len(text)
        if safe > self.emitted:
            piece, self.emitted = text[self.emitted:safe], safe
            return piece
        return None


# ----------------------------------------------------------------------------------------------------------------
# the worker

@dataclass
class _Job:
    fn: Callable[[], Any]
    future: concurrent.futures.Future


@dataclass
class _Rows:
    """One request's rows for a batched draw: `draw(pipe, rows, block) -> (outputs, notes)`, one output per row,
    drawn in forward passes of exactly `block` rows."""
    items: list
    draw: Callable[[Any, list], tuple[list, list[str]]]
    future: concurrent.futures.Future


class ModelWorker:
    """The thread that runs everything for one model: batched text generation and one-off jobs.

    `max_batch`: sequences decoded together; `max_rows`: rows of fixed-shape samples (images) drawn together;
    `max_wait_ms`: how long an idle worker waits for more requests to
    arrive before it starts a batch; `max_queue`: waiting requests (sequences not yet in the batch, and jobs) beyond
    which `submit` raises QueueFull. `observe(event, model, value)` receives metrics from the worker thread:
    ("batch", size) per decoding step, ("tokens", n) per finished sequence, ("queue", depth) when it changes,
    ("running", n) after each step."""

    def __init__(self, name: str, pipe, *, max_batch: int = 16, max_rows: int = 8, max_wait_ms: float = 2.0,
                 max_queue: int = 64,
                 observe: Callable[[str, str, float], None] | None = None):
        self.name, self.pipe = name, pipe
        self.max_batch, self.max_wait, self.max_queue = max_batch, max_wait_ms / 1000.0, max_queue
        self.max_rows = max_rows
        self.observe = observe or (lambda *a: None)
        batched = "generate" in pipe.capabilities and isinstance(pipe, BatchedDecoding)
        self.decoder = pipe.slot_decoder(max_batch) if batched else None
        self.context = self.decoder.context if self.decoder is not None else None  # tokens a prompt may have
        self._pending: collections.deque[Sequence] = collections.deque()
        self._jobs: collections.deque[_Job | _Rows] = collections.deque()
        self._active: dict[int, Sequence] = {}
        self._running = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"tetragen-serve-{name}", daemon=True)
        self._thread.start()

    # called from the event loop ----------------------------------------------------------------------------------
    def queue_depth(self) -> int:
        return len(self._pending) + len(self._jobs)

    def submit(self, sequences: list[Sequence]) -> None:
        """Queue sequences for generation; raises QueueFull when the queue is full (none of them is queued)."""
        tok = self.pipe.tokenizer
        with self._cond:
            self._admit_check()
            for seq in sequences:
                seq.decode = seq.decode or tok.decode
                self._pending.append(seq)
            self._cond.notify()
        self.observe("queue", self.name, self.queue_depth())

    def run(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run `fn()` in the worker thread; its result (or exception) comes back in the future."""
        return self._queue(_Job(fn, concurrent.futures.Future()))

    def rows(self, items: list, draw: Callable[..., tuple[list, list[str]]]) -> concurrent.futures.Future:
        """Queue a request's rows (each with its own seed and condition) to be drawn with other requests' rows of
        the same `draw`, a module-level function: draw(pipe, rows, block) -> (one output per row, notes), in forward
        passes of exactly `block` (= max_rows) rows, so that a row's output depends on that row alone whatever
        else is drawn with it. The future gets (this request's outputs, the notes of its call). When a merged draw
        fails with a UserError, each request is drawn again alone, so that one bad request fails alone."""
        return self._queue(_Rows(list(items), draw, concurrent.futures.Future()))

    def _queue(self, job: _Job | _Rows) -> concurrent.futures.Future:
        with self._cond:
            self._admit_check()
            self._jobs.append(job)
            self._cond.notify()
        self.observe("queue", self.name, self.queue_depth())
        return job.future

    def _admit_check(self) -> None:
        if self._closed:
            raise Closed(self.name)
        if self.queue_depth() >= self.max_queue:
            raise QueueFull(self.name)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # the thread ---------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                while not (self._pending or self._jobs or self._active or self._closed):
                    self._cond.wait()
                if self._closed:
                    break
                if not self._active and self._pending and self.max_wait > 0:
                    # an idle worker gives companions a moment to arrive, so that they decode together from step 1
                    self._cond.wait_for(lambda: len(self._pending) >= self.max_batch or self._closed,
                                        timeout=self.max_wait)
                elif not self._active and self._jobs and isinstance(self._jobs[0], _Rows) and self.max_wait > 0:
                    # rows: the same moment for other requests' rows to join the draw
                    self._cond.wait_for(lambda: self._queued_rows(self._jobs[0].draw) >= self.max_rows
                                        or self._closed, timeout=self.max_wait)
                job = self._jobs.popleft() if self._jobs else None
                if isinstance(job, _Rows):
                    job = self._take_rows(job)
                joining = []
                while self._pending and len(self._active) + len(joining) < self.max_batch:
                    seq = self._pending.popleft()
                    if not seq.cancelled:
                        joining.append(seq)
                    if self.decoder is None:  # one at a time through the pipeline's own stream
                        break
            self.observe("queue", self.name, self.queue_depth())
            if job is not None:
                self._run_job(job)
            try:
                if self.decoder is not None:
                    self._step(joining)
                else:
                    for seq in joining:
                        self._stream_alone(seq)
            except Exception as e:  # noqa: BLE001 - a bug must not kill the worker; every sequence hears of it
                log.exception("model %s: text generation failed", self.name)
                for seq in {id(s): s for s in [*self._active.values(), *joining]}.values():
                    self._end(seq, "error", e)
                self._active.clear()
            if len(self._active) != self._running:
                self._running = len(self._active)
                self.observe("running", self.name, self._running)
        self._fail_all(Closed(self.name))

    def _queued_rows(self, draw) -> int:
        return sum(len(j.items) for j in self._jobs if isinstance(j, _Rows) and j.draw is draw)

    def _take_rows(self, first: _Rows) -> list[_Rows]:
        """`first` and the queued requests with the same draw whose rows fit beside it in max_rows rows, in order
        (called with the lock held)."""
        taken, count = [first], len(first.items)
        for job in list(self._jobs):
            if isinstance(job, _Rows) and job.draw is first.draw and count + len(job.items) <= self.max_rows:
                self._jobs.remove(job)
                taken.append(job)
                count += len(job.items)
        return taken

    def _run_rows(self, jobs: list[_Rows]) -> None:
        jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]  # a client that hung up: not drawn
        if not jobs:
            return
        try:
            outputs, notes = jobs[0].draw(self.pipe, [item for j in jobs for item in j.items], self.max_rows)
        except UserError as e:
            if len(jobs) == 1:
                jobs[0].future.set_exception(e)
                return
            for j in jobs:  # which request was it: each drawn alone, so that only a bad one fails
                try:
                    j.future.set_result(j.draw(self.pipe, j.items, self.max_rows))
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    j.future.set_exception(e)
            return
        except BaseException as e:  # noqa: BLE001 - handed to the callers
            for j in jobs:
                j.future.set_exception(e)
            return
        self.observe("batch", self.name, len(outputs))
        start = 0
        for j in jobs:
            j.future.set_result((outputs[start:start + len(j.items)], notes))
            start += len(j.items)

    def _run_job(self, job: _Job | list[_Rows]) -> None:
        if isinstance(job, list):
            return self._run_rows(job)
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            job.future.set_exception(e)

    def _step(self, joining: list[Sequence]) -> None:
        """Prefill the newcomers, sample one token for every running sequence, feed the survivors."""
        free = [s for s in range(self.max_batch) if s not in self._active]
        for seq in joining:
            seq.slot = free.pop(0)
            seq.tokens = list(seq.prompt_ids)
            seq.generator = torch.Generator(device=self.decoder.device)
            seq.generator.manual_seed(seq.seed if seq.seed is not None else secrets.randbits(63))
            self._active[seq.slot] = seq
            if seq.max_new_tokens == 0:
                self._end(seq, "done", ("length", 0))
                continue
            seq.logits = self.decoder.prefill(seq.slot, seq.tokens)
        for seq in [s for s in self._active.values() if s.cancelled]:
            self._end(seq, None, None)
        running = list(self._active.values())
        if not running:
            return
        contexts = [torch.tensor([seq.tokens[-self.decoder.context:]], device=self.decoder.device)
                    if seq.params.repetition_penalty != 1.0 else None for seq in running]  # only the penalty reads it
        tokens = next_tokens(torch.cat([seq.logits for seq in running]), contexts, [seq.params for seq in running],
                             [seq.generator for seq in running]).tolist()
        for seq, token in zip(running, tokens):
            piece = seq.push(token)
            if piece:
                seq.emit("text", piece)
            if seq.finish:
                self._end(seq, "done", (seq.finish, len(seq.generated)))
        if self._active:
            self.observe("batch", self.name, len(self._active))
            step = self.decoder.decode({slot: seq.tokens for slot, seq in self._active.items()})
            for slot, logits in step.items():
                self._active[slot].logits = logits

    def _stream_alone(self, seq: Sequence) -> None:
        """A model without the batched layout: its pipeline's own `stream`, one sequence at a time. The stop strings
        are applied here; completion_tokens counts the pieces the stream yields (one per token, but for held-back
        partial characters)."""
        p = seq.params
        text, n, finish = "", 0, "length"
        stream = self.pipe.stream(seq.prompt, seq.max_new_tokens,
                                  temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, min_p=p.min_p,
                                  repetition_penalty=p.repetition_penalty, seed=seq.seed)
        hold = max(map(len, seq.stops), default=1) - 1
        for piece in stream:
            if seq.cancelled:
                return
            text, n = text + piece, n + 1
            cuts = [c for c in (text.find(s) for s in seq.stops) if c >= 0]
            if cuts:
                text, finish = text[:min(cuts)], "stop"
                break
            if len(text) - hold > seq.emitted:
                seq.emit("text", text[seq.emitted:len(text) - hold])
                seq.emitted = len(text) - hold
        if len(text) > seq.emitted:
            seq.emit("text", text[seq.emitted:])
        self._end(seq, "done", (finish, n))

    def _end(self, seq: Sequence, kind: str | None, value) -> None:
        self._active.pop(seq.slot, None)
        n = value[1] if kind == "done" else len(seq.generated)
        if n:
            self.observe("tokens", self.name, n)
        if kind is not None and not seq.cancelled:
            seq.emit(kind, value)

    def _fail_all(self, error: Exception) -> None:
        with self._cond:
            waiting, jobs = list(self._pending), list(self._jobs)
            self._pending.clear()
            self._jobs.clear()
        for seq in [*self._active.values(), *waiting]:
            self._end(seq, "error", error)
        for job in jobs:
            job.future.cancel()  # a request's rows, as any job
