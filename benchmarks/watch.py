"""The production watch at scale: 100k recorded conversations against a 100k-record corpus, in one process.

    .venv/bin/python benchmarks/watch.py [--corpus 100000] [--traffic 100000] [--novel 0.3]

The corpus is the demo generator's conversations (seed 1); the traffic is written to a traffic store by the
serve recorder's own writer (redaction included) as 5,000-record files: (1 - novel) of it more demo
conversations (another seed), the rest tickets about topics the corpus never saw. Timed, each phase on its own:
writing the store; sketching the corpus's customer sides (what a first watch of a corpus version does once and
stores); reading the window back; sketching the traffic; the nearest-record lookup for every conversation and
for the held-out baseline (the LSH lookup of tasks/dedup); clustering the novel ones; the reference-free scores.
The reference, measured in the same run: an exact pairwise scan (every traffic conversation against every corpus
record, the numba Jaccard kernel) over a sample of conversations, extrapolated to the whole traffic.
Peak memory is the process's maximum resident set (getrusage), read after each phase.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOPICS = ["my smart thermostat {n} keeps rebooting and the heating schedule resets every {day} night",
          "the solar inverter {n} shows error E{n} and produces no power since {day}",
          "how do I file the quarterly VAT return for my bakery, form {n} of {day}",
          "the dishwasher {n} we bought leaks water on {day} after the eco programme"]
DAYS = ["Monday", "Tuesday", "Friday", "Sunday"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stored(records: list[dict]):
    import pandas as pd

    from tasks.records.conversation import conversation_of, stored_columns

    rows = []
    for r in records:
        conversation = conversation_of({"messages": json.dumps(r["messages"]), "prompt": None,
                                        "tools": json.dumps(r["tools"]) if r.get("tools") else None})
        rows.append({"id": r["id"], **stored_columns(conversation)})
    return pd.DataFrame(rows)


def traffic_pending(count: int, novel_share: float, now: datetime) -> list[dict]:
    from adapterops.demo_data import HOUSE_POLICY, generate_conversations

    rng = random.Random(7)
    novel = int(count * novel_share)
    conversations = []
    for record in generate_conversations(count - novel, 2, id_prefix="P"):
        last = max(i for i, m in enumerate(record["messages"]) if m["role"] == "assistant")
        conversations.append((record["messages"][:last], record["messages"][last]["content"]))
    for _ in range(novel):
        text = rng.choice(TOPICS).format(n=rng.randint(10, 999), day=rng.choice(DAYS))
        conversations.append(([{"role": "system", "content": HOUSE_POLICY},
                               {"role": "user", "content": f"Hello, {text}. Thanks, {rng.choice(['Ana', 'Bo'])}"}],
                              "I am not sure how to help with that."))
    return [{"id": f"chatcmpl-{k:07d}", "time": (now - timedelta(seconds=5 * k)).isoformat(), "endpoint": "chat",
             "model": "m", "model_name": "m", "version": "1", "alias": "production", "key": "app", "stream": False,
             "latency_seconds": 0.2, "prompt_tokens": 40, "completion_tokens": 30, "messages": messages,
             "tools": None, "choices": [{"index": 0, "prompt": 0, "content": answer, "calls": [],
                                         "finish_reason": "stop"}]}
            for k, (messages, answer) in enumerate(conversations)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=int, default=100_000)
    parser.add_argument("--traffic", type=int, default=100_000)
    parser.add_argument("--novel", type=float, default=0.3)
    parser.add_argument("--scan-sample", type=int, default=200)
    args = parser.parse_args()

    import numpy as np

    from adapterops.config import ScorerSpec, WatchConfig
    from adapterops.demo_data import generate_conversations
    from tasks.dedup import kernels
    from tasks.serve.recording import RECORD_COLUMNS, RECORDS, record_rows, write_part
    from tasks.watch.novelty import customer_sketches, nearest_similarity, novel_clusters, novelty_params
    from tasks.watch.quality import length_range, production_scores
    from tasks.watch.traffic import window_records

    settings = WatchConfig()
    params = novelty_params(settings)
    now = datetime.now(timezone.utc)
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    memory: dict[str, float] = {}

    def phase(name, call):
        started, used = time.perf_counter(), time.process_time()
        value = call()
        times[name], cpu[name] = time.perf_counter() - started, time.process_time() - used
        memory[name] = peak_mb()
        print(f"{name}: {times[name]:.1f} s wall, {cpu[name]:.1f} s CPU (peak RSS {memory[name]:.0f} MB)", flush=True)
        return value

    corpus = phase("generate corpus (not watch)", lambda: stored(generate_conversations(args.corpus, 1)))
    split = int(len(corpus) * 0.9)
    train, heldout = corpus.iloc[:split].reset_index(drop=True), corpus.iloc[split:].reset_index(drop=True)
    pending = phase("generate traffic (not watch)", lambda: traffic_pending(args.traffic, args.novel, now))
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as folder:
        store = Path(folder)

        def write_store():
            for part in range(0, len(pending), 5000):
                rows = [row for p in pending[part:part + 5000] for row in record_rows(p)]
                write_part(rows, store / RECORDS, RECORD_COLUMNS, part)

        phase("recorder: redact and write the store", write_store)
        del pending
        train_sketches = phase("sketch the corpus (once per version)", lambda: customer_sketches(train, params))
        heldout_sketches = customer_sketches(heldout, params)
        traffic = phase("read the window", lambda: window_records(store, "m", "production", "1",
                                                                  now - timedelta(days=30), now + timedelta(days=1)))
        started_watch = time.perf_counter()
        sketches = phase("sketch the traffic", lambda: customer_sketches(traffic, params))
        rows, similarity = phase("lookup: traffic → nearest corpus record",
                                 lambda: nearest_similarity(sketches, train_sketches, params))
        _, held = phase("lookup: held-out baseline", lambda: nearest_similarity(heldout_sketches, train_sketches, params))
        novel = np.flatnonzero(similarity < settings.novelty_threshold)
        from tasks.watch.novelty import customer_text

        texts = [customer_text(r) for r in traffic.iloc[novel].to_dict("records")]
        clusters = phase("cluster the novel conversations",
                         lambda: novel_clusters(texts, traffic["id"].iloc[novel].tolist(), sketches.take(novel),
                                                settings, len(traffic)))
        specs = [ScorerSpec(kind="regex_match", name="format",
                            pattern=r"^Triage: \w+ \| priority: \w+ \| team: [^\n]+\nReply: ")]
        scores, _ = phase("reference-free scores", lambda: production_scores(traffic, specs,
                                                                           length_range(train["completion"])))
        watch_seconds = time.perf_counter() - started_watch + times["read the window"]
        watch_cpu = sum(cpu[k] for k in ("read the window", "sketch the traffic", "lookup: traffic → nearest corpus record",
                                         "lookup: held-out baseline", "cluster the novel conversations",
                                         "reference-free scores"))

        sample = np.random.default_rng(0).choice(len(traffic), size=min(args.scan_sample, len(traffic)), replace=False)
        sets = np.concatenate([train_sketches.sets, sketches.sets])
        offsets = np.concatenate([train_sketches.set_offsets, train_sketches.set_offsets[-1] + sketches.set_offsets[1:]])
        base = len(train_sketches.ids)
        every = np.arange(base, dtype=np.int64)

        def scan():
            return np.array([kernels.pair_jaccard(sets, offsets, every, np.full(base, base + q, np.int64)).max()
                             for q in sample])

        exact = phase(f"reference: pairwise scan of {len(sample)} conversations", scan)
        scan_total = times[f"reference: pairwise scan of {len(sample)} conversations"] * len(traffic) / len(sample)
        agree = float(((exact >= settings.novelty_threshold) == (similarity[sample] >= settings.novelty_threshold)).mean())

    print()
    print(f"corpus {len(train)} train + {len(heldout)} held-out records, traffic {len(traffic)} conversations "
          f"({args.novel:.0%} about topics the corpus never saw)")
    print(f"watch (read, sketch, lookups, clusters, scores): {watch_seconds:.1f} s wall, {watch_cpu:.1f} s CPU; with "
          f"the first sketch of the corpus version: {watch_seconds + times['sketch the corpus (once per version)']:.1f} s")
    print(f"peak RSS {max(memory.values()):.0f} MB")
    print(f"novel share {float((similarity < settings.novelty_threshold).mean()):.1%}, held-out baseline "
          f"{float((held < settings.novelty_threshold).mean()):.1%}; largest cluster {clusters[0]['size']} "
          f"({', '.join(clusters[0]['words'][:3])}); format {scores.get('format', 0):.2f}")
    print(f"pairwise scan extrapolated: {scan_total:.0f} s for the traffic lookup, "
          f"{scan_total / times['lookup: traffic → nearest corpus record']:.0f}x the LSH lookup; verdict agreement "
          f"on the sample {agree:.1%}")


if __name__ == "__main__":
    main()
