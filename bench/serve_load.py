"""Load on `tetragen serve`: concurrent streaming completions at 1, 4, 16 and 64 clients, with dynamic batching and
without it (`--max-batch 1`).

The server is a real `tetragen serve` process on localhost serving a GPT of the `fast` preset (what the quickstart
trains; its weights come from a short training run on Tiny Shakespeare, since decoding speed does not depend on how
well a model is trained). Every client sends streamed completions of `--tokens` new tokens (no stop strings, so
every answer is exactly that long) one after another for `--seconds` seconds. Reported per level: requests/s,
generated tokens/s, p50/p99 latency and time to first token, errors (5xx, and any other failure), and the server's
peak resident memory (VmHWM) at the end of the level. The bench is bounded: each level lasts `--seconds`, then
every client finishes its request in flight.

With `--parts images --image-run RUN` (an image run: a prompt -> image `t2i`, or a GAN/VAE) a server of that run
answers `/v1/images/generations` (one image per request, a prompt drawn from --image-prompts, base64 PNG) at 1, 4
and 16 clients, once drawing the images of concurrent requests together (the server's default) and once one request
at a time (`--max-rows 1`): images/s, latency p50/p99, errors, peak RSS, and the ratio of images/s at 16 clients
(section serve_load_images).

    python bench/serve_load.py                 # writes the serve_load section of bench/RESULTS.md
    python bench/serve_load.py --parts images --image-run runs/quickstart/t2i
    python bench/serve_load.py --quick         # smoke run: short levels, nothing written
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, write_section  # noqa: E402

WORK = ROOT / "bench" / "_work" / "serve_load"
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
LEVELS = (1, 4, 16, 64)
PROMPT = "ROMEO:\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trained_run(steps: int) -> Path:
    run = WORK / "gpt_fast"
    if not (run / "model.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "tetragen", "train", "gpt", "--preset", "fast", "--data", str(DATA),
                        "--out", str(run), "--overwrite", "--no-progress", f"train.max_steps={steps}",
                        "train.warmup_steps=10"], check=True, cwd=ROOT)
    return run


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


class Server:
    def __init__(self, run: Path, max_batch: int, name: str = "gpt", max_rows: int | None = None):
        self.port = free_port()
        rows = ["--max-rows", str(max_rows)] if max_rows is not None else []
        self.proc = subprocess.Popen([sys.executable, "-m", "tetragen", "serve", f"{name}={run}", "--port",
                                      str(self.port), "--max-batch", str(max_batch), "--max-queue", "256", *rows],
                                     cwd=ROOT, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        import httpx
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not become healthy in 120 s")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


async def client(http, url: str, tokens: int, until: float, out: list, seed: int) -> None:
    k = 0
    while time.perf_counter() < until:
        body = {"model": "gpt", "prompt": PROMPT, "max_tokens": tokens, "temperature": 0.8, "stream": True,
                "seed": seed * 1000 + k}
        k += 1
        t0 = time.perf_counter()
        first, n, status, done = None, 0, 0, False
        try:
            async with http.stream("POST", url + "/v1/completions", json=body, timeout=120) as r:
                status = r.status_code
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    if line == "data: [DONE]":
                        done = True
                        break
                    if first is None:
                        first = time.perf_counter() - t0
                    chunk = json.loads(line[6:])
                    n += sum(1 for c in chunk["choices"] if c.get("text"))
        except Exception as e:  # a failed request is counted, never hidden
            out.append({"status": status or -1, "error": type(e).__name__})
            continue
        out.append({"status": status, "latency": time.perf_counter() - t0, "ttft": first, "tokens": n,
                    "done": done})


async def image_client(http, url: str, prompts: list[str], until: float, out: list, seed: int) -> None:
    k = 0
    while time.perf_counter() < until:
        body = {"model": "img", "prompt": prompts[(seed + k) % len(prompts)], "n": 1, "response_format": "b64_json",
                "seed": seed * 1000 + k}
        k += 1
        t0 = time.perf_counter()
        try:
            r = await http.post(url + "/v1/images/generations", json=body, timeout=120)
            ok = r.status_code == 200 and bool(r.json()["data"][0]["b64_json"])
        except Exception as e:  # a failed request is counted, never hidden
            out.append({"status": -1, "error": type(e).__name__})
            continue
        out.append({"status": r.status_code, "latency": time.perf_counter() - t0, "done": ok})


async def image_level(url: str, clients: int, prompts: list[str], seconds: float) -> dict:
    import httpx
    out: list = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients + 4)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(image_client(http, url, prompts, t0 + seconds, out, c) for c in range(clients)))
        wall = time.perf_counter() - t0
    good = [r for r in out if r.get("status") == 200 and r.get("done")]
    lat = np.array([r["latency"] for r in good]) if good else np.zeros(1)
    return {"clients": clients, "requests": len(out), "ok": len(good), "wall_s": wall,
            "server_errors": sum(1 for r in out if r.get("status", 0) >= 500),
            "other_errors": sum(1 for r in out if r not in good and r.get("status", 0) < 500),
            "req_per_s": len(good) / wall, "lat_p50": float(np.percentile(lat, 50)),
            "lat_p99": float(np.percentile(lat, 99))}


def measure_images(run: Path, prompts: list[str], seconds: float, max_rows: int) -> list[dict]:
    server = Server(run, 16, name="img", max_rows=max_rows)
    rows = []
    try:
        for c in (1, 4, 16):
            r = asyncio.run(image_level(server.url, c, prompts, seconds))
            r["peak_rss_mb"] = peak_rss_mb(server.proc.pid)
            r["max_rows"] = max_rows
            rows.append(r)
            print(f"images, max_rows {max_rows}, {c} clients: {r['req_per_s']:.2f} images/s, latency p99 "
                  f"{r['lat_p99']:.3f} s, 5xx {r['server_errors']}, other errors {r['other_errors']}", flush=True)
    finally:
        server.stop()
    return rows


async def level(url: str, clients: int, tokens: int, seconds: float) -> dict:
    import httpx
    out: list = []
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http, url, tokens, t0 + seconds, out, c) for c in range(clients)))
        wall = time.perf_counter() - t0
    good = [r for r in out if r.get("status") == 200 and r.get("done")]
    lat = np.array([r["latency"] for r in good]) if good else np.zeros(1)
    ttft = np.array([r["ttft"] for r in good if r["ttft"] is not None]) if good else np.zeros(1)
    return {"clients": clients, "requests": len(out), "ok": len(good), "wall_s": wall,
            "server_errors": sum(1 for r in out if r.get("status", 0) >= 500),
            "other_errors": sum(1 for r in out if r not in good and r.get("status", 0) < 500),
            "req_per_s": len(good) / wall, "tok_per_s": sum(r["tokens"] for r in good) / wall,
            "lat_p50": float(np.percentile(lat, 50)), "lat_p99": float(np.percentile(lat, 99)),
            "ttft_p50": float(np.percentile(ttft, 50)), "ttft_p99": float(np.percentile(ttft, 99))}


def measure(run: Path, max_batch: int, levels, tokens: int, seconds: float) -> list[dict]:
    server = Server(run, max_batch)
    rows = []
    try:
        for c in levels:
            r = asyncio.run(level(server.url, c, tokens, seconds))
            r["peak_rss_mb"] = peak_rss_mb(server.proc.pid)
            rows.append(r)
            print(f"max_batch {max_batch}, {c} clients: {r['tok_per_s']:.0f} tok/s, {r['req_per_s']:.2f} req/s, "
                  f"TTFT p99 {r['ttft_p99']:.3f} s, 5xx {r['server_errors']}, other errors {r['other_errors']}",
                  flush=True)
    finally:
        log = server.stop()
    threads = re.search(r"\((\d+) torch thread", log)
    for r in rows:
        r["threads"] = int(threads.group(1)) if threads else None
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["| clients | requests ok | requests/s | tokens/s | latency p50 / p99 | TTFT p50 / p99 | 5xx | other "
             "errors | server peak RSS |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clients']} | {r['ok']} | {r['req_per_s']:.2f} | {r['tok_per_s']:.0f} | "
                     f"{r['lat_p50']:.2f} / {r['lat_p99']:.2f} s | {r['ttft_p50']:.3f} / {r['ttft_p99']:.3f} s | "
                     f"{r['server_errors']} | {r['other_errors']} | {r['peak_rss_mb']:.0f} MB |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each level")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per request")
    ap.add_argument("--max-batch", type=int, default=None, help="the batching server's --max-batch (default: "
                                                                "the server's own default)")
    ap.add_argument("--max-rows", type=int, default=8, help="--parts images: the batching server's --max-rows "
                                                                 "(default 8, the server's own)")
    ap.add_argument("--parts", nargs="+", default=["text"], choices=["text", "images"])
    ap.add_argument("--image-run", type=Path, default=None, help="--parts images: the image run to serve")
    ap.add_argument("--image-prompts", default="a pair of trousers|a dark sneaker|a large light pullover|a small bag",
                    help="prompts of the image requests, separated by |")
    args = ap.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    WORK.mkdir(parents=True, exist_ok=True)
    if "images" in args.parts:
        if args.image_run is None:
            raise SystemExit("--parts images needs --image-run RUN")
        images(args, seconds)
    if "text" in args.parts:
        text(args, seconds)


def images(args, seconds: float) -> None:
    import tetragen
    pipe = tetragen.load(args.image_run)
    batch = args.max_rows
    prompts = args.image_prompts.split("|")
    batched = measure_images(args.image_run, prompts, seconds, batch)
    alone = measure_images(args.image_run, prompts, seconds, 1)
    ratio = batched[-1]["req_per_s"] / max(alone[-1]["req_per_s"], 1e-9)
    print(f"images at 16 clients: {ratio:.2f}x the images/s of one request at a time; p99 latency "
          f"{batched[-1]['lat_p99']:.3f} s (batched) vs {alone[-1]['lat_p99']:.3f} s", flush=True)
    if args.quick:
        return
    errors = sum(r["server_errors"] for r in batched + alone)
    body = ["## Serving images under load (`bench/serve_load.py --parts images`)", "", *header(),
            f"- server: `tetragen serve img={args.image_run}` ({pipe.config.family}, "
            f"{sum(p.numel() for p in pipe.model.parameters()) / 1e6:.2f} M parameters; a separate process on the "
            f"same 2 cores as the clients); each client posts `/v1/images/generations` for one image (base64 "
            f"PNG, prompts {args.image_prompts.replace('|', ', ')}, its own seed) back to back for {seconds:g} s "
            f"per level; the images of concurrent requests drawn together (`--max-rows {batch}`, forward passes "
            f"of {batch} rows) and one request at a time (`--max-rows 1`)", "",
            "| --max-rows | clients | images ok | images/s | latency p50 / p99 | 5xx | other errors | "
            "server peak RSS |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in batched + alone:
        body.append(f"| {r['max_rows']} | {r['clients']} | {r['ok']} | {r['req_per_s']:.2f} | "
                    f"{r['lat_p50']:.3f} / {r['lat_p99']:.3f} s | {r['server_errors']} | {r['other_errors']} | "
                    f"{r['peak_rss_mb']:.0f} MB |")
    body += ["", f"At 16 clients, drawing requests together served **{ratio:.2f}x** the images/s of one request at a "
                 f"time, with p99 latency {batched[-1]['lat_p99']:.3f} s against {alone[-1]['lat_p99']:.3f} s. "
                 f"Server errors (5xx) at every level: {errors}."]
    write_section("serve_load_images", "\n".join(body))
    print("wrote the serve_load_images section of bench/RESULTS.md")


def text(args, seconds: float) -> None:
    run = trained_run(20 if args.quick else 300)
    from tetragen.serve.app import Limits
    batch = args.max_batch or Limits().max_batch
    batched = measure(run, batch, LEVELS, args.tokens, seconds)
    single = measure(run, 1, LEVELS, args.tokens, seconds)
    at16 = {r["clients"]: r for r in batched}[16], {r["clients"]: r for r in single}[16]
    ratio = at16[0]["tok_per_s"] / max(at16[1]["tok_per_s"], 1e-9)
    errors = sum(r["server_errors"] for r in batched + single)
    print(f"16 clients: batching {at16[0]['tok_per_s']:.0f} tok/s vs --max-batch 1 {at16[1]['tok_per_s']:.0f}: "
          f"{ratio:.2f}x; p99 TTFT {at16[0]['ttft_p99']:.3f} s; 5xx {errors}")
    if args.quick:
        return
    body = ["## Serving under load (`bench/serve_load.py`)", "", *header(),
            f"- server: `tetragen serve` (a separate process) with one GPT of the `fast` preset "
            f"({batched[0]['threads']} torch threads, the server's rule); clients on the same 2 cores, each "
            f"sending streamed completions of {args.tokens} new tokens (temperature 0.8, no stop) back to back "
            f"for {seconds:g} s per level", "",
            f"Dynamic batching (`--max-batch {batch}`):", "", *table(batched), "",
            "Batching off (`--max-batch 1`):", "", *table(single), "",
            f"At 16 clients batching generates **{ratio:.2f}x** the tokens/s of `--max-batch 1` (target >= 4x: "
            f"**{'met' if ratio >= 4 else 'missed'}**); p99 time to first token {at16[0]['ttft_p99']:.3f} s "
            f"(target < 1 s: **{'met' if at16[0]['ttft_p99'] < 1 else 'missed'}**); server errors (5xx) at every "
            f"level: {errors} (target 0: **{'met' if errors == 0 else 'missed'}**)."]
    write_section("serve_load", "\n".join(body))
    print("wrote the serve_load section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
