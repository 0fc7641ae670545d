"""Load test of `adapterops serve` on the tiny model, side by side in one run (issue 26 item 6):

(a) 16 adapters with the requests spread over them vs the same requests to 1 adapter: throughput ratio
    (goal >= 0.8x: mixed-adapter batches cost little more than single-adapter ones);
(b) the same traffic the naive way, without AdapterOps: one peft model with the 16 adapters loaded,
    `set_adapter` then `generate` per request, one at a time: throughput ratio (goal >= 3x);
(c) streaming time to first token, p50 / p95, with 32 concurrent clients;
(d) errors at 64 concurrent clients (goal: 0).

Run with: .venv/bin/python benchmarks/serve.py [--requests 64] [--clients 16] [--max-tokens 16] [--adapters 16]

It registers the adapters (seeded random LoRA weights, logged as training logs them) in a temporary
workspace and starts `adapterops serve` as a subprocess; every figure is measured in this run.
"""

from __future__ import annotations

import argparse
import json
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


def percentile(values: list[float], q: float) -> float:
    from tasks.release.staging import percentile as pct

    return pct(values, q) if values else float("nan")


def run(url: str, jobs: list[dict], clients: int, stream: bool = False) -> dict:
    """Send jobs with `clients` threads; latency (or time to first token when streaming) per request, errors."""
    import httpx

    latencies, firsts, errors, lock, queue = [], [], [], threading.Lock(), list(jobs)

    def client() -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started, first = time.perf_counter(), None
                try:
                    if stream:
                        with http.stream("POST", "/v1/chat/completions", json=body | {"stream": True}) as response:
                            ok = response.status_code == 200
                            for line in response.iter_lines():
                                if first is None and '"content": "' in line and '"content": ""' not in line:
                                    first = time.perf_counter() - started
                            problem = f"HTTP {response.status_code}"
                    else:
                        response = http.post("/v1/chat/completions", json=body)
                        ok, problem = response.status_code == 200, f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as error:
                    ok, problem = False, repr(error)
                with lock:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                        if first is not None:
                            firsts.append(first)
                    else:
                        errors.append(problem)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"requests": len(jobs), "errors": len(errors), "first_error": errors[0] if errors else None,
            "seconds": wall, "rps": len(latencies) / wall, "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95), "ttft_p50": percentile(firsts, 50), "ttft_p95": percentile(firsts, 95)}


def naive(base: Path, names: list[str], jobs: list[dict]) -> dict:
    """What a user without AdapterOps writes: one PeftModel, set_adapter + generate per request, one at a time."""
    import mlflow
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.model.prompts import prompt_token_ids
    from tasks.serve import registered_adapter

    torch.set_num_threads(1)   # as the server (serve.cpu_threads): the same compute, the same contention
    client = mlflow.MlflowClient()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    for name in names:
        adapter = registered_adapter(client, name, "1")
        if isinstance(model, PeftModel):
            model.load_adapter(adapter.adapter_dir, adapter_name=name)
        else:
            model = PeftModel.from_pretrained(model, adapter.adapter_dir, adapter_name=name).eval()
    started = time.perf_counter()
    for job in jobs:
        model.set_adapter(job["model"])
        ids = torch.tensor([prompt_token_ids(tokenizer, job["messages"][0]["content"], "### Ticket\n{prompt}\n### Response\n")])
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=job["max_tokens"],
                           do_sample=False, pad_token_id=tokenizer.pad_token_id)
    wall = time.perf_counter() - started
    return {"requests": len(jobs), "errors": 0, "seconds": wall, "rps": len(jobs) / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=64, help="Requests per throughput run.")
    parser.add_argument("--clients", type=int, default=16, help="Concurrent clients in the throughput runs.")
    parser.add_argument("--max-tokens", type=int, default=16, help="max_tokens of every request.")
    parser.add_argument("--adapters", type=int, default=16, help="Adapters the traffic is spread over in (a).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="adapterops-bench-serve-"))
    os.environ["ADAPTEROPS_HOME"] = str(home)
    from adapterops.tiny_model import ensure_tiny_model
    from adapterops.workspace import configure_environment, resolve_workspace

    configure_environment(resolve_workspace())
    import yaml

    from tasks.serve.process import ServerProcess
    from tests.serve.adapters import register_adapter

    base = ensure_tiny_model(resolve_workspace().models_dir)
    names = [f"bench-{i:02d}" for i in range(args.adapters)]
    print(f"registering {len(names)} adapters ...", flush=True)
    for seed, name in enumerate(names):
        register_adapter(name, seed, base, "production")

    def jobs(count: int, spread: bool) -> list[dict]:
        return [{"model": names[i % len(names)] if spread else names[0], "max_tokens": args.max_tokens,
                 "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)] + f" (ticket {i})"}]}
                for i in range(count)]

    # the naive baseline runs half before and half after the server's runs: load on a shared machine drifts
    print("naive peft baseline, first half ...", flush=True)
    naive_jobs = jobs(args.requests, True)
    before = naive(base, names, naive_jobs[: len(naive_jobs) // 2])
    config = home / "serve.yaml"
    config.write_text(yaml.safe_dump({"serve": {"max_loaded": len(names), "max_batch": 16, "max_queue": 256}}))
    with ServerProcess(names, ["production"], 60, home / "serve.log", config_path=config) as server:
        server.wait_healthy(600)
        run(server.url, jobs(8, True), 4)   # warm-up
        one = run(server.url, jobs(args.requests, False), args.clients)
        many = run(server.url, jobs(args.requests, True), args.clients)
        ttft = run(server.url, jobs(max(args.requests, 64), True), 32, stream=True)
        crowd = run(server.url, jobs(max(args.requests, 128), True), 64)
    print("naive peft baseline, second half ...", flush=True)
    after = naive(base, names, naive_jobs[len(naive_jobs) // 2:])
    seconds = before["seconds"] + after["seconds"]
    plain = {"requests": len(naive_jobs), "errors": 0, "seconds": seconds, "rps": len(naive_jobs) / seconds,
             "rps_before": before["rps"], "rps_after": after["rps"]}

    print(f"\nadapterops serve, tiny model, {args.requests} requests x {args.max_tokens} tokens, "
          f"{args.clients} clients, {os.cpu_count()} CPUs")
    print(f"{'run':<46}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}{'errors':>8}")
    rows = (("1 adapter", one), (f"(a) {len(names)} adapters, spread", many),
            ("(b) naive peft, set_adapter per request", plain),
            ("(c) streaming, 32 clients", ttft), ("(d) 64 concurrent clients", crowd))
    for label, r in rows:
        print(f"{label:<46}{r['rps']:>8.2f}{r.get('p50', float('nan')):>8.2f}{r.get('p95', float('nan')):>8.2f}"
              f"{r['errors']:>8}")
    ratio_a, ratio_b = many["rps"] / one["rps"], many["rps"] / plain["rps"]
    print(f"(a) {len(names)} adapters vs 1 adapter, throughput: {ratio_a:.2f}x (goal >= 0.8x)")
    print(f"(b) adapterops serve vs naive peft, throughput: {ratio_b:.2f}x (goal >= 3x; naive {plain['rps_before']:.2f} "
          f"req/s before the server runs, {plain['rps_after']:.2f} after)")
    print(f"(c) time to first token, 32 streaming clients: p50 {ttft['ttft_p50']:.2f} s, p95 {ttft['ttft_p95']:.2f} s")
    print(f"(d) errors at 64 concurrent clients: {crowd['errors']} of {crowd['requests']}")
    if args.json:
        args.json.write_text(json.dumps({"one": one, "many": many, "naive": plain, "ttft": ttft, "crowd": crowd,
                                         "ratio_a": ratio_a, "ratio_b": ratio_b}, indent=2))
    if any(r["errors"] for _, r in rows):
        raise SystemExit("errors under load: see " + str(home / "serve.log"))


if __name__ == "__main__":
    main()
