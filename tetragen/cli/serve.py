"""`tetragen serve RUN_DIR [NAME=RUN_DIR ...] [--host 127.0.0.1] [--port 8000] [--api-key KEY]`: an
OpenAI-compatible HTTP server over trained runs (tetragen/serve/app.py lists the routes), with a playground page at
`/` for trying them from a browser.

Each run is served under a name: the run folder's name, or NAME from NAME=RUN_DIR. Requests name a model by it, and
only names on this list are looked up; a request never names a path. The runs are loaded once, in the background
after the port is open (GET /health answers 503 until they are). The server listens on localhost unless --host
says otherwise; the API key comes from --api-key or the TETRAGEN_API_KEY environment variable.
"""
from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

from ..errors import UserError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve trained runs over an OpenAI-compatible HTTP API")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a run folder, or NAME=RUN_DIR to serve it as NAME")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, printed)")
    p.add_argument("--api-key", default=None,
                   help="require `Authorization: Bearer KEY` (default: $TETRAGEN_API_KEY; unset: no key)")
    p.add_argument("--max-batch", type=int, default=16,
                   help="sequences of one model decoded together (default 16)")
    p.add_argument("--max-rows", type=int, default=8,
                   help="images (samples of a fixed shape) of one model drawn together, in forward passes of exactly "
                        "this many rows (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="how long an idle model waits for more requests before it starts a batch (default 2)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="waiting requests per model before the server answers 429 (default 64)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a request may take before 504 (default 120)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: $OMP_NUM_THREADS, else the idle cores divided among the "
                        "models, see tetragen/threads.py)")
    p.add_argument("--device", default="cpu", help="where the models run: cpu, cuda, cuda:1, ... (default cpu)")
    p.set_defaults(run=run)


def parse_runs(specs: list[str]) -> dict[str, Path]:
    """RUN_DIR or NAME=RUN_DIR arguments -> {name: run folder}; one-line errors for bad or repeated names."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or Path(spec).exists():
            path = spec
            name = Path(spec).resolve().name
        if not NAME.match(name):
            raise UserError(f"{spec}: {name!r} cannot be a model name (letters, digits, '.', '_', '-'; at most 64); "
                            f"name it with NAME=RUN_DIR")
        if name in out:
            raise UserError(f"{spec}: the name {name!r} is taken by {out[name]}; give one of them another name "
                            f"with NAME=RUN_DIR")
        out[name] = Path(path)
    return out


def _bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise UserError(f"--port: {port} is out of range; use 0 to 65535 (0: any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); choose another --port "
                        f"(0: any free port)") from None
    sock.listen(2048)
    return sock


def run(args) -> int:
    import logging

    import uvicorn

    from .. import api
    from .. import threads as thread_rule
    from ..serve.app import Limits, create_app

    runs = parse_runs(args.runs)
    for name, path in runs.items():
        api.read_run_config(path)  # a folder that is not a run stops here, before the port opens
    limits = Limits(max_batch=args.max_batch, max_rows=args.max_rows, max_wait_ms=args.max_wait_ms,
                    max_queue=args.max_queue, timeout_s=args.timeout)
    limits.check()
    api.check_device(args.device)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads: {args.threads} must be at least 1")
    key = args.api_key if args.api_key is not None else os.environ.get("TETRAGEN_API_KEY") or None
    threads = thread_rule.apply(args.threads, n_models=len(runs))
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    if args.host not in LOOPBACK and key is None:
        print(f"tetragen: warning: listening on {args.host} without an API key: anyone who reaches this machine "
              f"can use the models; set --api-key or TETRAGEN_API_KEY", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    failed: list[str] = []

    def load():
        try:
            return {name: api.load(path, device=args.device) for name, path in runs.items()}
        except Exception as e:  # the server stops, and the command fails with the message
            failed.append(" ".join(str(e).splitlines()) or type(e).__name__)
            server.should_exit = True
            raise

    app = create_app(load, api_key=key, limits=limits)
    shown = f"[{host}]" if ":" in host else host
    print(f"tetragen: serving {', '.join(runs)} at http://{shown}:{port}/v1 ({threads} torch thread"
          f"{'s' if threads != 1 else ''}; GET /health says when the models are loaded); the playground page is "
          f"http://{shown}:{port}/", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="info", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if failed:
        raise UserError(f"loading the models failed: {failed[0]}")
    return 0
