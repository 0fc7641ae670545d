"""Load test of `adapterops serve`: N concurrent clients over 2 adapters on the tiny model, against the same
requests sent one at a time, to the same server in the same run.

Run with: .venv/bin/python benchmarks/serve.py [--requests 48] [--clients 8] [--max-tokens 16]

It registers two adapters (seeded random LoRA weights, logged as training logs them) in a temporary
workspace, starts `adapterops serve` as a subprocess, and reports requests/s, p50/p95 latency and
errors (must be 0) for both runs; concurrent requests for different adapters share mixed-adapter batches.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ["I was charged twice for my subscription this month", "The app crashes when I open settings",
           "How do I change the e-mail address on my account?", "My refund has not arrived after two weeks"]


def run(url: str, jobs: list[dict], clients: int) -> dict:
    """Send jobs with `clients` threads; latency per request, errors, and wall time."""
    import httpx

    latencies, errors, lock, queue = [], [], threading.Lock(), list(jobs)

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                try:
                    response = http.post("/v1/chat/completions", json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError as error:
                    ok, response = False, error
                with lock:
                    (latencies if ok else errors).append(time.perf_counter() - started if ok else str(response))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    from tasks.release.staging import percentile

    return {"requests": len(jobs), "errors": len(errors), "seconds": wall, "rps": len(latencies) / wall,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=48, help="Requests per run (half to each adapter).")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients in the concurrent run.")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens of every request.")
    args = parser.parse_args()

    os.environ["ADAPTEROPS_HOME"] = tempfile.mkdtemp(prefix="adapterops-bench-serve-")
    from adapterops.tiny_model import ensure_tiny_model
    from adapterops.workspace import configure_environment, resolve_workspace

    configure_environment(resolve_workspace())
    from tasks.serve.process import ServerProcess
    from tests.serve.adapters import register_adapter

    base = ensure_tiny_model(resolve_workspace().models_dir)
    names = ["bench-support", "bench-billing"]
    for seed, name in enumerate(names):
        register_adapter(name, seed, base, "production")
    jobs = [{"model": names[i % 2], "max_tokens": args.max_tokens,
             "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)] + f" (ticket {i})"}]}
            for i in range(args.requests)]
    log = Path(os.environ["ADAPTEROPS_HOME"]) / "serve.log"
    with ServerProcess(names, ["production"], 30, log) as server:
        server.wait_healthy(300)
        run(server.url, jobs[:4], 2)   # warm-up
        sequential = run(server.url, jobs, 1)
        concurrent = run(server.url, jobs, args.clients)
    print(f"adapterops serve, tiny model, 2 adapters, {args.requests} requests x {args.max_tokens} tokens, "
          f"{os.cpu_count()} CPUs")
    print(f"{'run':<24}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}{'errors':>8}")
    for label, r in (("one at a time", sequential), (f"{args.clients} concurrent clients", concurrent)):
        print(f"{label:<24}{r['rps']:>8.2f}{r['p50']:>8.2f}{r['p95']:>8.2f}{r['errors']:>8}")
    print(f"throughput, concurrent vs one at a time: {concurrent['rps'] / sequential['rps']:.2f}x")
    if sequential["errors"] or concurrent["errors"]:
        raise SystemExit("errors under load: see " + str(log))


if __name__ == "__main__":
    main()
