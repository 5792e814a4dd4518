"""The HTTP server of `tetragen serve`: an OpenAI-compatible API over loaded runs, as a FastAPI app.

    app = create_app({"baby": tetragen.load("runs/baby")}, api_key="secret")

Routes are chosen by what a run can do (`pipe.capabilities`, tetragen/pipeline.py), never by its family. Each kind
of content declares the routes of its capabilities (`Modality.routes`) and mounts the ones it serves itself
(`Modality.add_routes`, e.g. tetragen/modalities/image/serve.py); this module is the server around them: its own
routes, the request edge, body parsing, errors, metrics and the model workers. Its own routes:

| route                          | what                                                                              |
|--------------------------------|-----------------------------------------------------------------------------------|
| GET  /v1/models                | the served models: id, family, what each makes, capabilities, routes, card        |
| GET  /health                   | 503 while the models load, then 200                                               |
| GET  /metrics                  | Prometheus text format                                                            |
| GET  /                         | the playground page (static/index.html, app.js, style.css, each kind's panel)     |

Every kind of content adds its own (its `Modality.routes`; GET /v1/models lists each model's), with their request
bodies beside them in its folder; what every body shares is schemas.py's.

Seeds: output i of a request with `seed` s is made with seed s + i, so a seeded request gives the same output on
every call whatever else the server runs (batching.py; each modality's routes say how).

Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`: 400 bad values (the message names the
field and its allowed range), 401 a missing or wrong API key, 404 an unknown model or route, 413 a body over
`Limits.max_body_bytes`, 422 malformed fields (wrong types, missing fields), 429 a full queue (with Retry-After),
500 a bug (logged with its request id, which the client gets in the message and in `X-Request-ID`), 503 still
loading, 504 over `Limits.timeout_s`. No traceback reaches a client.

With an API key, every route but /health and the playground's files asks for `Authorization: Bearer KEY` (the
page holds no secret: it asks its user for the key and sends it with each API call).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import threading
import time
import uuid
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping, get_args

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import UserError
from ..pipeline import require
from ..registry import get_modality, list_modalities, run_modality
from . import schemas as S
from .batching import Closed, ModelWorker, QueueFull, Sequence

log = logging.getLogger("tetragen.serve")

OWN_ROUTES = ("/v1/models", "/health", "/metrics", "/")  # the server's own; the rest are the modalities'
OPEN_ROUTES = ("/health",)  # answered without an API key, as are the playground's files
PAGE_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
              ".css": "text/css; charset=utf-8"}
# the page loads its own script and style only; generated images arrive as data: URLs, generated sound as data: URLs too
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self' data:; "
                                           "object-src 'none'; "
                                           "base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class Limits:
    """What the server accepts and how it queues; `tetragen serve` flags set the first three."""
    max_batch: int = 16             # sequences of one model decoded together (bench/serve_load.py: 16 vs 8)
    max_rows: int = 8               # rows of fixed-shape samples (images) of one model drawn together
    max_wait_ms: float = 2.0        # an idle model waits this long for companions before it starts a batch
    max_queue: int = 64             # waiting sequences and jobs per model before 429
    max_body_bytes: int = 1 << 20   # larger bodies: 413
    max_tokens: int = 4096          # per choice
    chat_max_tokens: int = 256      # a chat request's default max_tokens
    max_n: int = 16                 # choices per prompt
    max_prompts: int = 32           # prompts (or texts) per request
    max_images: int = 16            # images per request
    timeout_s: float = 120.0        # from arrival to the last token: 504 beyond

    def check(self) -> None:
        for name in ("max_batch", "max_rows", "max_queue", "max_body_bytes", "max_tokens", "chat_max_tokens", "max_n",
                     "max_prompts", "max_images"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')}: {getattr(self, name)} must be at least 1")
        if not (self.max_wait_ms >= 0 and math.isfinite(self.max_wait_ms)):
            raise UserError(f"--max-wait-ms: {self.max_wait_ms} must be >= 0")
        if not self.timeout_s > 0:
            raise UserError(f"--timeout: {self.timeout_s} must be > 0 seconds")


class APIError(Exception):
    """An error the client gets in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class BodyTooLarge(Exception):
    """The body read so far is over Limits.max_body_bytes; `more`: the client has more of it to send."""

    def __init__(self, more: bool):
        super().__init__()
        self.more = more


class ClientGone(Exception):
    """The client disconnected before its answer was ready (logged as status 499, nginx's "client closed request")."""


# ----------------------------------------------------------------------------------------------------------------
# metrics

class Metrics:
    """The server's Prometheus metrics, in a registry of its own (so that several apps can live in one process)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tetragen_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.latency = Histogram("tetragen_request_duration_seconds", "time from request to the end of the response",
                                 ["route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.ttft = Histogram("tetragen_time_to_first_token_seconds", "time from request to the first generated text",
                              ["model"], registry=r,
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.tokens = Counter("tetragen_generated_tokens", "tokens generated", ["model"], registry=r)
        self.queue = Gauge("tetragen_queue_depth", "sequences and jobs waiting for the model", ["model"], registry=r)
        self.running = Gauge("tetragen_running_sequences", "sequences being decoded", ["model"], registry=r)
        self.batch = Histogram("tetragen_batch_size", "sequences decoded together per step", ["model"], registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))

    def observe(self, event: str, model: str, value: float) -> None:
        """What a ModelWorker reports (from its thread)."""
        if event == "batch":
            self.batch.labels(model).observe(value)
        elif event == "tokens":
            self.tokens.labels(model).inc(value)
        elif event == "queue":
            self.queue.labels(model).set(value)
        elif event == "running":
            self.running.labels(model).set(value)


# ----------------------------------------------------------------------------------------------------------------
# the edge: request ids, API key, body cap, request metrics, and the last word on unexpected errors

class _Edge:
    def __init__(self, app, server: "_Server"):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        server = self.server
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        rid = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope["tetragen.request_id"] = rid
        scope["tetragen.receive"] = receive  # for draining a body refused as too large
        path = scope.get("path", "")
        route = (path if path in server.routes else "/v1/models/{id}" if path.startswith("/v1/models/")
                 else "/static/{file}" if path in server.page else "other")
        started, status = time.monotonic(), [0]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", rid.encode("latin-1"))]}
            await send(message)

        received = [0]

        async def capped_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > server.limits.max_body_bytes:
                    raise BodyTooLarge(bool(message.get("more_body")))
            return message

        try:
            error = self._refuse(path, headers)
            if error is not None:
                if error.status == 413:
                    await drain(receive)
                await error.response()(scope, receive, send_with_id)
            else:
                await self.app(scope, capped_receive, send_with_id)
        except ClientGone:  # nobody reads the answer; a bodiless one closes the exchange
            if status[0] == 0:
                await Response(status_code=499)(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - the client gets a request id, the log gets the traceback
            log.exception("request %s: %s %s failed", rid, scope.get("method"), path)
            if status[0] == 0:
                err = APIError(500, f"internal server error (request id {rid}); the server log has the details",
                               type="server_error", code="internal_error")
                await err.response()(scope, receive, send_with_id)
            status[0] = status[0] or 500
        finally:
            code = status[0] or 500
            if code >= 500:
                log.error("request %s: %s %s -> %d", rid, scope.get("method"), path, code)
            server.metrics.requests.labels(route, str(code)).inc()
            server.metrics.latency.labels(route).observe(time.monotonic() - started)

    def _refuse(self, path: str, headers: dict[str, str]) -> APIError | None:
        """401 for a missing or wrong key; 413 for a declared body over the cap."""
        key = self.server.api_key
        if key is not None and path not in OPEN_ROUTES and path not in self.server.page:
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if not auth:
                return APIError(401, "no API key; send the header `Authorization: Bearer KEY` (the key the server "
                                     "was started with)", type="authentication_error", code="missing_api_key",
                                headers={"WWW-Authenticate": "Bearer"})
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
                return APIError(401, "invalid API key", type="authentication_error", code="invalid_api_key",
                                headers={"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.server.limits.max_body_bytes:
            return _too_large(self.server.limits)
        return None


async def drain(receive, limit: int = 64 << 20) -> None:
    """Read and drop the rest of a refused body (up to `limit` bytes), so that the client, still sending it, reads
    the error instead of a reset connection."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
        seen += len(message.get("body", b""))


def _too_large(limits: Limits) -> APIError:
    return APIError(413, f"the request body is over {limits.max_body_bytes} bytes; send less (fewer or shorter "
                         f"prompts)", code="body_too_large")


def served_routes() -> tuple[str, ...]:
    """Every route the server answers: its own and those of every kind of content."""
    return tuple(dict.fromkeys([*OWN_ROUTES, *(r for m in list_modalities() for rs in get_modality(m).routes.values()
                                                for r in rs)]))


# ----------------------------------------------------------------------------------------------------------------
# the playground page

def page_files() -> dict[str, tuple[bytes, str]]:
    """The playground's files, {URL path: (content, media type)}, read once from the package's static/ folder and
    from each kind of content's own panel script (`Modality.playground`, served as /static/modality-KIND.js and
    loaded by the page after app.js); "/" is index.html. Only these exact paths are served: no part of a request's
    path reaches the file system."""
    from importlib import resources
    folder = resources.files(__package__) / "static"
    files = {}
    for entry in folder.iterdir():
        kind = PAGE_TYPES.get(PurePath(entry.name).suffix)
        if kind and entry.is_file():
            files[f"/static/{entry.name}"] = (entry.read_bytes(), kind)
    scripts = []
    for name in list_modalities():
        script = get_modality(name).playground
        if script:
            files[f"/static/modality-{name}.js"] = (Path(script).read_bytes(), PAGE_TYPES[".js"])
            scripts.append(f'<script src="/static/modality-{name}.js" defer></script>')
    if "/static/index.html" in files:
        page, kind = files["/static/index.html"]
        app_js = b'<script src="/static/app.js" defer></script>'
        files["/static/index.html"] = (page.replace(app_js, app_js + "".join(scripts).encode()), kind)
        files["/"] = files["/static/index.html"]
    return files


# ----------------------------------------------------------------------------------------------------------------
# the server's state

class _Server:
    def __init__(self, models, api_key: str | None, limits: Limits):
        limits.check()
        self.loader: Callable[[], Mapping[str, Any]] = models if callable(models) else (lambda: models)
        self.api_key = api_key or None
        self.limits = limits
        self.metrics = Metrics()
        self.models: dict[str, Any] = {}
        self.workers: dict[str, ModelWorker] = {}
        self.ready, self.load_error = False, None
        self.created = int(time.time())
        self.page = page_files()
        self.routes = served_routes()  # the metrics' route labels
        self._loading: threading.Thread | None = None

    def start(self) -> None:
        """Load the models (in a thread, so that /health answers 503 meanwhile) and start a worker for each."""
        def load():
            try:
                models = dict(self.loader())
                for name, pipe in models.items():
                    self.workers[name] = ModelWorker(
                        name, pipe, max_batch=self.limits.max_batch, max_rows=self.limits.max_rows,
                        max_wait_ms=self.limits.max_wait_ms,
                        max_queue=self.limits.max_queue, observe=self.metrics.observe)
                self.models = models
                self.ready = True
                log.info("serving %s", ", ".join(f"{n} ({p.config.family}: {', '.join(sorted(p.capabilities))})"
                                                 for n, p in models.items()))
            except Exception as e:  # noqa: BLE001 - reported by /health and the log
                self.load_error = " ".join(str(e).splitlines()) or type(e).__name__
                log.exception("loading the models failed")
        self._loading = threading.Thread(target=load, name="tetragen-serve-load", daemon=True)
        self._loading.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        if self._loading is not None:
            self._loading.join(timeout)
        return self.ready

    def stop(self) -> None:
        if self._loading is not None:
            self._loading.join()
        for w in self.workers.values():
            w.close()

    def check_ready(self) -> None:
        """503 until the models are loaded."""
        if not self.ready:
            if self.load_error:
                raise APIError(503, f"the models failed to load: {self.load_error}", type="server_error",
                               code="load_failed")
            raise APIError(503, "the models are still loading; retry shortly", type="server_error",
                           code="not_ready", headers={"Retry-After": "1"})

    def model(self, name: str, *capabilities: str, kind: str | None = None):
        """The pipeline and worker of model `name`, which must have one of `capabilities` and, with `kind`, make
        that kind of content (a route of one modality does not serve another's models)."""
        self.check_ready()
        pipe = self.models.get(name)
        if pipe is None:
            raise APIError(404, f"model {name!r} not found; this server has: {', '.join(sorted(self.models))}",
                           param="model", code="model_not_found")
        makes = run_modality(pipe.config)
        if kind is not None and makes.name != kind:
            elsewhere = sorted({r for c in pipe.capabilities for r in makes.routes.get(c, ())})
            raise APIError(400, f"model {name!r} makes {makes.name}, not {kind}"
                                + (f"; use {' or '.join(elsewhere)}" if elsewhere else ""),
                           param="model", code="model_not_supported")
        if capabilities and not (set(capabilities) & pipe.capabilities):
            try:
                require(pipe, capabilities[0], f"model {name!r}")
            except UserError as e:
                raise APIError(400, str(e), param="model", code="model_not_supported") from None
        return pipe, self.workers[name]


# ----------------------------------------------------------------------------------------------------------------
# request bodies

def body_fields(schema: type[BaseModel]) -> set[str]:
    """The field names of a request body and of the models nested in it (a chat message's `role`, ...)."""
    names, todo, seen = set(), [schema], set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for name, info in cls.model_fields.items():
            names.add(name)
            kinds = [info.annotation]
            while kinds:
                t = kinds.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    todo.append(t)
                kinds.extend(get_args(t))
    return names
RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


async def parse(request: Request, schema: type[BaseModel]):
    """The JSON body as `schema`: 413 over the cap, 400 not JSON or out of range, 422 wrong fields."""
    try:
        raw = await request.body()
    except BodyTooLarge as e:
        if e.more:
            await drain(request.scope["tetragen.receive"])
        raise _too_large(request.app.state.server.limits) from None
    if not raw.strip():
        raise APIError(400, "the request body is empty; send a JSON object", code="invalid_json")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(400, f"the request body is not valid JSON ({e})", code="invalid_json") from None
    if not isinstance(doc, dict):
        raise APIError(400, f"the request body must be a JSON object, not {type(doc).__name__}", code="invalid_json")
    try:
        return schema.model_validate(doc)
    except ValidationError as e:
        raise _validation_error(schema, e) from None


def _validation_error(schema: type[BaseModel], e: ValidationError) -> APIError:
    # of a union's errors (one per member it tried), the one about the value rather than about its type
    errors = e.errors(include_url=False)
    err = min(errors, key=lambda x: (x["type"].endswith("_type"), -len(x["loc"])))
    # pydantic names the union member it tried ("str", "list[...]") in the location; keep fields and indices
    fields = body_fields(schema)
    loc = [p for p in err["loc"] if isinstance(p, int) or p in fields]
    path = ".".join(map(str, loc)) or "body"
    top = str(loc[0]) if loc else None
    if err["type"] == "missing":
        return APIError(422, f"{path}: required", param=top, code="missing_field")
    if err["type"] in RANGE_ERRORS:
        rng = S.allowed_range(schema, top) if len(loc) == 1 else None
        value = repr(err.get("input"))[:40]
        return APIError(400, f"{path}: {value} is out of range; allowed {rng or err['msg'].lower()}", param=top,
                        code="out_of_range")
    if err["type"] in ("string_too_long", "too_long", "string_too_short", "too_short"):
        return APIError(400, f"{path}: {err['msg'][0].lower()}{err['msg'][1:]}", param=top, code="out_of_range")
    if err["type"] == "literal_error":
        return APIError(400, f"{path}: {err['msg'][0].lower()}{err['msg'][1:]}", param=top, code="invalid_value")
    return APIError(422, f"{path}: {err['msg'][0].lower()}{err['msg'][1:]}", param=top, code="invalid_type")


def at_most(field: str, value: int, hi: int, lo: int = 0) -> None:
    if not lo <= value <= hi:
        raise APIError(400, f"{field}: {value} is out of range; allowed {lo} to {hi} on this server", param=field,
                       code="out_of_range")


def count_items(field: str, items: list, hi: int) -> None:
    """A list field of 1 to `hi` items (prompts, texts)."""
    if not items:
        raise APIError(400, f"{field}: an empty list; give at least one", param=field, code="invalid_value")
    if len(items) > hi:
        raise APIError(400, f"{field}: {len(items)} items; this server takes at most {hi} per request",
                       param=field, code="out_of_range")


FLAG = re.compile(r"^--([a-z][a-z-]*)")


def user_error(e: UserError, fields: Mapping[str, str] = {}) -> APIError:
    """A pipeline's one-line UserError (worded for the CLI: "--top-k: ...") as a 400 naming the request's field."""
    message = " ".join(str(e).splitlines())
    m = FLAG.match(message)
    param = None
    if m:
        param = fields.get(m.group(1), m.group(1).replace("-", "_"))
        message = param + message[m.end():]
    return APIError(400, message, param=param, code="invalid_value")


def steering(pipe, body, model: str) -> tuple:
    """The request's sampling settings checked by a model that chooses them at sampling time (Steered), its
    defaults filled in, as sorted (name, value) pairs (rows with equal settings are drawn together); () when the
    request gives none. A 400 naming the field for a model that takes none, or that one, or a value out of its
    range."""
    given = body.steering()
    if not given:
        return ()
    field = next(iter(given))
    if "steer" not in pipe.capabilities:
        try:
            require(pipe, "steer", f"model {model!r}", f"leave {field} out")
        except UserError as e:
            raise APIError(400, f"{field}: {e}", param=field, code="unsupported") from None
    require(pipe, "steer", f"model {model!r}")
    for name in given:
        if name not in pipe.sampling_options:
            raise APIError(400, f"{name}: model {model!r} does not take it; it takes "
                                f"{', '.join(pipe.sampling_options)}", param=name, code="unsupported")
    try:
        return tuple(sorted(pipe.check_sampling(**given).items()))
    except UserError as e:
        raise setting_error(e) from None


def by_settings(rows: list) -> dict[tuple, list[int]]:
    """Rows (seed, condition, settings) of one or more requests -> the rows' indices by their sampling settings (a
    forward pass draws rows of one settings)."""
    groups: dict[tuple, list[int]] = {}
    for i, (_, _, settings) in enumerate(rows):
        groups.setdefault(settings, []).append(i)
    return groups


def setting_error(e: UserError, fields: tuple = S.SETTINGS) -> APIError:
    """A pipeline's UserError about a request field ("steps: ...", "--class ...") as a 400 naming it: one of
    `fields` by its name, else as `user_error` reads it."""
    message = " ".join(str(e).splitlines())
    name = message.split(":", 1)[0].split(" ", 1)[0]
    if name in fields:
        return APIError(400, message, param=name, code="invalid_value")
    return user_error(e, {"class": "prompt", "prompt": "prompt", "n": "n"})


_WARNINGS_LOCK = threading.Lock()  # warnings.catch_warnings changes process-wide state


def with_warnings(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """fn() and the messages of the warnings it raised."""
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


# ----------------------------------------------------------------------------------------------------------------
# waiting on the worker

class _Mailbox:
    """Events from the worker threads to the event loop: posted from any thread, delivered to their queues in one
    wake-up of the loop however many arrived meanwhile (a decoding step of 16 sequences wakes it once, not 16
    times)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.lock, self.items, self.scheduled = loop, threading.Lock(), [], False

    def post(self, queue: asyncio.Queue, item) -> None:
        with self.lock:
            self.items.append((queue, item))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop has closed: nobody is listening
            pass

    def _deliver(self) -> None:
        with self.lock:
            items, self.items, self.scheduled = self.items, [], False
        for queue, item in items:
            queue.put_nowait(item)


_MAILBOXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> its _Mailbox


class Generation:
    """The sequences of one request and the events the worker sends back for them."""

    def __init__(self, request: Request, model: str, deadline: float, metrics: Metrics, started: float):
        self.request, self.model, self.deadline, self.metrics, self.started = request, model, deadline, metrics, started
        loop = asyncio.get_running_loop()
        self.mailbox = _MAILBOXES.get(loop) or _MAILBOXES.setdefault(loop, _Mailbox(loop))
        self.queue: asyncio.Queue = asyncio.Queue()
        self.sequences: list[Sequence] = []
        self.remaining = 0
        self.first = True
        self._getter: asyncio.Future | None = None  # one pending queue.get, kept across polls (no event is lost)

    def emitter(self, index: int):
        def emit(kind, value):
            self.mailbox.post(self.queue, (index, kind, value))
        return emit

    def ready(self) -> bool:
        """Whether the next event has arrived already (`next` then returns without waiting)."""
        return self._getter.done() if self._getter is not None else not self.queue.empty()

    def cancel(self) -> None:
        for s in self.sequences:
            s.cancel()
        if self._getter is not None:
            self._getter.cancel()
            self._getter = None

    async def next(self, *, watch_disconnect: bool) -> tuple[int, str, Any]:
        """The next event; 504 past the deadline. `watch_disconnect`: poll the connection (not while a streaming
        response runs: Starlette listens for the disconnect itself then and cancels the stream)."""
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.cancel()
                raise APIError(504, f"the request took longer than the server's limit of "
                                    f"{self.request.app.state.server.limits.timeout_s:g} s; ask for fewer tokens",
                               type="server_error", code="timeout")
            if self._getter is None and not self.queue.empty():  # arrived already: no waiting machinery
                index, kind, value = self.queue.get_nowait()
            else:
                if self._getter is None:
                    self._getter = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({self._getter}, timeout=min(left, 0.25))
                if not done:
                    if watch_disconnect and await self.request.is_disconnected():
                        self.cancel()
                        raise ClientGone()
                    continue
                index, kind, value = self._getter.result()
                self._getter = None
            if self.first and kind in ("text", "done"):
                self.first = False
                self.metrics.ttft.labels(self.model).observe(time.monotonic() - self.started)
            if kind in ("done", "error"):
                self.remaining -= 1
            if kind == "error":
                self.cancel()
                if isinstance(value, Closed):
                    raise APIError(503, "the server is shutting down", type="server_error", code="shutting_down")
                raise value
            return index, kind, value


async def await_job(request: Request, worker: ModelWorker, fn: Callable[[], Any], deadline: float):
    """fn() run in the model's worker thread, awaited until `deadline` (504 past it; a client that hangs up
    cancels it)."""
    return await _await(request, worker, lambda: worker.run(fn), deadline)


async def await_rows(request: Request, worker: ModelWorker, items: list, draw, deadline: float):
    """A request's rows drawn by the model's worker with other requests' rows (`ModelWorker.rows`): (this request's
    outputs, notes), awaited as `await_job`."""
    return await _await(request, worker, lambda: worker.rows(items, draw), deadline)


async def _await(request: Request, worker: ModelWorker, submit, deadline: float):
    try:
        future = submit()
    except QueueFull:
        raise queue_full(worker) from None
    except Closed:
        raise APIError(503, "the server is shutting down", type="server_error", code="shutting_down") from None
    wrapped = asyncio.wrap_future(future)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            future.cancel()
            raise APIError(504, f"the request took longer than the server's limit of "
                                f"{request.app.state.server.limits.timeout_s:g} s", type="server_error",
                           code="timeout")
        done, _ = await asyncio.wait({wrapped}, timeout=min(left, 0.25))
        if done:
            return wrapped.result()
        if await request.is_disconnected():
            future.cancel()
            raise ClientGone()


def queue_full(worker: ModelWorker) -> APIError:
    return APIError(429, f"model {worker.name!r} has {worker.queue_depth()} requests waiting, its limit; retry "
                         f"after a moment", type="rate_limit_error", code="queue_full", headers={"Retry-After": "1"})


def sse(doc) -> str:
    return f"data: {json.dumps(doc, ensure_ascii=False)}\n\n"


# ----------------------------------------------------------------------------------------------------------------
# the app

def create_app(models: Mapping[str, Any] | Callable[[], Mapping[str, Any]], *, api_key: str | None = None,
               limits: Limits | None = None) -> FastAPI:
    """The server over `models` ({name: a loaded pipeline}, or a function that loads them, which then runs in a
    thread at startup while /health answers 503). `api_key`: required as `Authorization: Bearer KEY` when set."""
    from contextlib import asynccontextmanager
    server = _Server(models, api_key, limits or Limits())

    @asynccontextmanager
    async def lifespan(app):
        server.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, server.stop)

    app = FastAPI(title="tetragen", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.add_middleware(_Edge, server=server)

    @app.exception_handler(APIError)
    async def _api_error(request, e: APIError):
        if e.status >= 500:
            log.error("request %s: %s", request.scope.get("tetragen.request_id"), e.message)
        return e.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        message = {404: f"no route {request.url.path}; see GET /v1/models and the OpenAI routes",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
        return APIError(e.status_code, message, code={404: "not_found", 405: "method_not_allowed"}.get(
            e.status_code)).response()

    # ------------------------------------------------------------------------------------------------------------
    @app.get("/health")
    async def health():
        if server.ready:
            return {"status": "ok", "models": sorted(server.models)}
        if server.load_error:
            body = APIError(503, f"the models failed to load: {server.load_error}", type="server_error",
                            code="load_failed").body()
            return JSONResponse({"status": "failed", **body}, status_code=503)
        body = APIError(503, "the models are loading", type="server_error", code="not_ready").body()
        return JSONResponse({"status": "loading", **body}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def page_route(path: str, content: bytes, kind: str):
        async def page_file():
            return Response(content, media_type=kind, headers=PAGE_HEADERS)
        app.get(path, include_in_schema=False)(page_file)

    for path, (content, kind) in server.page.items():
        page_route(path, content, kind)

    for name in list_modalities():  # each kind of content mounts its own routes
        if get_modality(name).add_routes is not None:
            get_modality(name).add_routes(app)

    def _model_card(name, pipe) -> dict:
        """OpenAI's model object, plus what the model does: its family, the kind of content it makes, its
        capabilities and routes, its context in tokens (batched text models) and what its modality adds (the class
        names of a class-conditional image model, whose prompt is a class name)."""
        modality = run_modality(pipe.config)
        card = {"id": name, "object": "model", "created": server.created, "owned_by": "tetragen",
                "family": pipe.config.family, "capabilities": sorted(pipe.capabilities),
                "makes": modality.name,
                "routes": sorted({r for c in pipe.capabilities for r in modality.routes.get(c, ())})}
        context = server.workers[name].context
        if context is not None:
            card["context"] = context
        if modality.card is not None:  # what its kind of content adds (a class-conditional model's classes, ...)
            card.update(modality.card(pipe))
        return card

    @app.get("/v1/models")
    async def list_models():
        server.check_ready()
        return {"object": "list", "data": [_model_card(n, p) for n, p in sorted(server.models.items())]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str):
        pipe, _ = server.model(name)
        return _model_card(name, pipe)

    return app


__all__ = ["APIError", "Limits", "Metrics", "create_app"]
