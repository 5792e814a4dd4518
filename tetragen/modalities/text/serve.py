"""The text modality's routes: OpenAI's completions and chat completions (`generate`; `stream: true` as server-sent
events), and tetragen's own fill-mask and classify.

Text generation is decoded by the model's worker for all running requests together (tetragen/serve/batching.py);
choice i of a request with `seed` s is generated with seed s + i (prompt j of a list of prompts with n choices each
is choices j*n .. j*n+n-1), so a seeded request gives the same text whatever else the server runs. Fill-mask and
classify run as one job each in the model's worker.
"""
from __future__ import annotations

import logging
import secrets
import time
from typing import Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from ...errors import UserError
from ...sample.tokens import SamplingParams
from ...serve import schemas as S
from . import schemas as T
from ...serve.app import (APIError, Generation, at_most, await_job, count_items, parse, queue_full, sse,
                          user_error, with_warnings)
from ...serve.batching import Closed, QueueFull, Sequence

log = logging.getLogger("tetragen.serve")


def add_routes(app) -> None:
    server = app.state.server
    async def start_generation(request: Request, body, prompts: list[str], stops: list[str], max_tokens: int,
                               prompt_field: str) -> tuple[Generation, list[int]]:
        started = time.monotonic()
        pipe, worker = server.model(body.model, "generate")
        lim = server.limits
        refused = body.unsupported()
        if refused:
            raise APIError(400, refused[1], param=refused[0], code="unsupported")
        at_most("max_tokens", max_tokens, lim.max_tokens)
        at_most("n", body.n, lim.max_n, 1)
        count_items(prompt_field, prompts, lim.max_prompts)
        params = SamplingParams(body.temperature, body.top_k, body.top_p, body.min_p, body.repetition_penalty)
        encoded = [pipe.tokenizer.encode(p or "\n") for p in prompts]
        for j, ids in enumerate(encoded):
            if worker.context is not None and len(ids) > worker.context:
                which = f"{prompt_field}[{j}]" if len(prompts) > 1 else prompt_field
                raise APIError(400, f"{which}: {len(ids)} tokens, longer than the model's context of "
                                    f"{worker.context} tokens; shorten it", param=prompt_field,
                               code="context_length_exceeded")
        gen = Generation(request, body.model, started + lim.timeout_s, server.metrics, started)
        for j, ids in enumerate(encoded):
            for i in range(body.n):
                index = j * body.n + i
                seed = None if body.seed is None else (body.seed + index) % (S.MAX_SEED + 1)
                gen.sequences.append(Sequence(ids, max_tokens, params, stops, gen.emitter(index), seed=seed,
                                              prompt=prompts[j]))
        gen.remaining = len(gen.sequences)
        try:
            worker.submit(gen.sequences)
        except QueueFull:
            raise queue_full(worker) from None
        except Closed:
            raise APIError(503, "the server is shutting down", type="server_error", code="shutting_down") from None
        return gen, [len(ids) for ids in encoded]

    async def collect(gen: Generation) -> tuple[list[str], list[str], int]:
        texts, finish, tokens = [""] * len(gen.sequences), [""] * len(gen.sequences), 0
        try:
            while gen.remaining:
                index, kind, value = await gen.next(watch_disconnect=True)
                if kind == "text":
                    texts[index] += value
                else:
                    finish[index], n = value
                    tokens += n
        finally:
            gen.cancel()
        return texts, finish, tokens

    def usage(prompt_tokens: list[int], completion_tokens: int) -> dict:
        p = sum(prompt_tokens)
        return {"prompt_tokens": p, "completion_tokens": completion_tokens, "total_tokens": p + completion_tokens}

    async def stream(gen: Generation, chunk: Callable[[int, str | None, str | None], dict], prompt_tokens,
                     include_usage: bool, head: list[dict], tail: Callable[[dict], dict]):
        """A StreamingResponse of server-sent events; the first event is awaited first, so that an error before
        any text (a timeout in the queue) still gets its own status."""
        first = await gen.next(watch_disconnect=True)

        async def events():
            tokens = 0
            try:
                for doc in head:
                    yield sse(doc)
                item, events = first, []
                while True:  # one event per token; those that arrived together are sent in one write
                    index, kind, value = item
                    if kind == "text":
                        events.append(sse(chunk(index, value, None)))
                    else:
                        finish, n = value
                        tokens += n
                        events.append(sse(chunk(index, None, finish)))
                    if not gen.remaining:
                        break
                    if not gen.ready():
                        yield "".join(events)
                        events = []
                    item = await gen.next(watch_disconnect=False)
                if events:
                    yield "".join(events)
                if include_usage:
                    yield sse(tail({"choices": [], "usage": usage(prompt_tokens, tokens)}))
                yield "data: [DONE]\n\n"
            except APIError as e:  # after the headers: the error goes in the stream, as OpenAI sends it
                yield sse(e.body())
            except UserError as e:
                yield sse(user_error(e).body())
            except Exception:  # noqa: BLE001
                rid = gen.request.scope.get("tetragen.request_id")
                log.exception("request %s: streaming failed", rid)
                yield sse(APIError(500, f"internal server error (request id {rid})", type="server_error",
                                    code="internal_error").body())
            finally:
                gen.cancel()
        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _fingerprint() -> str:
        from ... import __version__
        return f"tetragen-{__version__}"

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await parse(request, T.CompletionRequest)
        prompts = body.prompts()
        gen, prompt_tokens = await start_generation(request, body, prompts, body.stops(), body.max_new_tokens(),
                                                    "prompt")
        cid, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())
        base = {"id": cid, "object": "text_completion", "created": created, "model": body.model,
                "system_fingerprint": _fingerprint()}
        echo = [prompts[i // body.n] if body.echo else "" for i in range(len(gen.sequences))]
        if body.stream:
            def chunk(index, text, finish):
                return {**base, "choices": [{"index": index, "text": text or "", "finish_reason": finish,
                                             "logprobs": None}]}
            head = [chunk(i, e, None) for i, e in enumerate(echo) if e]
            include = bool(body.stream_options and body.stream_options.include_usage)
            return await stream(gen, chunk, prompt_tokens, include, head, lambda d: {**base, **d})
        texts, finish, tokens = await collect(gen)
        return {**base, "choices": [{"index": i, "text": echo[i] + t, "finish_reason": f, "logprobs": None}
                                    for i, (t, f) in enumerate(zip(texts, finish))],
                "usage": usage(prompt_tokens, tokens)}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await parse(request, T.ChatRequest)
        max_tokens = next((m for m in (body.max_completion_tokens, body.max_tokens) if m is not None),
                          server.limits.chat_max_tokens)
        field = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        try:
            at_most("max_tokens", max_tokens, server.limits.max_tokens)
        except APIError as e:
            e.message, e.param = e.message.replace("max_tokens", field, 1), field
            raise
        prompt = T.render_chat(body.messages)
        gen, prompt_tokens = await start_generation(request, body, [prompt], [T.CHAT_STOP, *body.stops()],
                                                    max_tokens, "messages")
        cid, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        base = {"id": cid, "created": created, "model": body.model, "system_fingerprint": _fingerprint()}
        if body.stream:
            def chunk(index, text, finish):
                delta = {"content": text} if text is not None else {}
                return {**base, "object": "chat.completion.chunk",
                        "choices": [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}]}
            head = [{**base, "object": "chat.completion.chunk",
                     "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                                  "logprobs": None}]} for i in range(len(gen.sequences))]
            include = bool(body.stream_options and body.stream_options.include_usage)
            return await stream(gen, chunk, prompt_tokens, include, head,
                                lambda d: {**base, "object": "chat.completion.chunk", **d})
        texts, finish, tokens = await collect(gen)
        return {**base, "object": "chat.completion",
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": f,
                             "logprobs": None} for i, (t, f) in enumerate(zip(texts, finish))],
                "usage": usage(prompt_tokens, tokens)}

    # ------------------------------------------------------------------------------------------------------------
    # fill-mask, classify: one job in the model's worker

    async def per_text(request: Request, schema, capability: str, answer, shape, fields: dict) -> dict:
        """A request of texts answered one by one in a job of the model's worker: answer(pipe, body, text), and
        shape(text, answer) -> the item of each text in the response list."""
        started = time.monotonic()
        body = await parse(request, schema)
        pipe, worker = server.model(body.model, capability)
        texts = body.texts()
        count_items("text", texts, server.limits.max_prompts)
        try:
            results = await await_job(request, worker,
                                       lambda: [with_warnings(lambda t=t: answer(pipe, body, t)) for t in texts],
                                       started + server.limits.timeout_s)
        except UserError as e:
            raise user_error(e, fields) from None
        data = []
        for i, (text, (result, notes)) in enumerate(zip(texts, results)):
            item = {"index": i, **shape(text, result)}
            if notes:
                item["warnings"] = notes
            data.append(item)
        return {"object": "list", "model": body.model, "data": data}

    @app.post("/v1/fill-mask")
    async def fill_mask(request: Request):
        return await per_text(
            request, T.FillMaskRequest, "fill_mask", lambda pipe, body, t: pipe.fill_mask(t, body.top_k),
            lambda text, per_mask: {"text": text, "masks": [[{"token": t, "score": p} for t, p in cands]
                                                            for cands in per_mask]},
            {"text": "text", "top-k": "top_k"})

    @app.post("/v1/classify")
    async def classify(request: Request):
        return await per_text(request, T.ClassifyRequest, "classify", lambda pipe, body, t: pipe.classify(t),
                              lambda text, probs: {"label": next(iter(probs)), "scores": probs}, {"text": "text"})

