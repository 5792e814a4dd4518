"""`tetragen serve`: an OpenAI-compatible HTTP server over loaded runs.

    from tetragen.serve import create_app
    app = create_app({"baby": tetragen.load("runs/baby")})    # an ASGI app; `tetragen serve` runs it with uvicorn

app.py holds the routes and errors, schemas.py the request bodies, batching.py the worker thread per model and the
dynamic batching of text generation, static/ the playground page served at `/` (plain HTML, CSS and JavaScript
that call the API as any client does).
"""
from .app import APIError, Limits, create_app

__all__ = ["APIError", "Limits", "create_app"]
