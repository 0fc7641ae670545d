"""Near-duplicate removal, raw text → clusters: AdapterOps vs datasketch documented usage vs rensa.

    .venv/bin/pip install -e '.[bench]'   # rensa, benchmark only
    .venv/bin/python benchmarks/dedup.py [--docs 125000] [--mode both|memory|process] [--repeats 3]

A seeded corpus of ~150-word documents with planted near-duplicate families (substitutions,
insertions, deletions, reordering, boilerplate wrappers, formatting noise). Ground truth is the
exact Jaccard of word 5-gram sets, computed here with Python sets, independent of the pipelines.
All three pipelines use 128 permutations, 16 bands x 8 rows, and verify candidates by exact Jaccard
>= 0.8 before union-find, so their recall is comparable and the times measure the engines.

Two modes. `memory`: each pipeline in this process, from the strings already in memory to cluster
ids. `process`: what a user runs, each pipeline as its own process from the same JSONL file on disk
to cluster ids on disk: `adapterops dedup FILE --out DIR` cold (the first run after `make install`:
the project's bytecode and numba caches cleared, then the install's warm-up step) and warm, and a
plain rensa script and the datasketch documented usage as scripts (this file with --peer).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLD, NUM_PERM, BANDS, NGRAM = 0.8, 128, 16, 5
WRAPPERS = [("hello team, forwarding this from the customer:", "best regards, the support desk"),
            ("fyi see below.", "sent from my phone"), ("ticket update:", "please do not reply to this message")]


def make_corpus(docs: int, seed: int) -> tuple[list[str], list[int]]:
    """Texts and the family each belongs to (near-duplicates share a family; -1 = standalone)."""
    rng = random.Random(seed)
    vocabulary = [f"w{k}" for k in range(40000)]
    weights = [1 / (k + 10) for k in range(len(vocabulary))]
    pool = rng.choices(vocabulary, weights, k=docs * 160)
    texts, families, position = [], [], 0
    while len(texts) < docs:
        length = rng.randint(120, 180)
        base = pool[position:position + length]
        position = (position + length) % (len(pool) - 200)
        family = len(texts)
        texts.append(" ".join(base))
        families.append(family)
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 4)):
                if len(texts) < docs:
                    texts.append(variant(base, rng, vocabulary))
                    families.append(family)
    return texts, families


def variant(words: list[str], rng: random.Random, vocabulary: list[str]) -> str:
    words = list(words)
    kind = rng.choice(["substitute", "insert", "delete", "reorder", "wrap", "format"])
    edits = rng.choice([1, 1, 2, 3, 5, 8])
    if kind == "substitute":
        for _ in range(edits):
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
    elif kind == "insert":
        for _ in range(edits):
            words.insert(rng.randrange(len(words)), rng.choice(vocabulary))
    elif kind == "delete":
        for _ in range(edits):
            del words[rng.randrange(len(words))]
    elif kind == "reorder":
        cut = rng.randrange(20, len(words) - 20)
        words = words[cut:] + words[:cut]
    elif kind == "wrap":
        head, tail = rng.choice(WRAPPERS)
        return f"{head}\n\n{' '.join(words)}\n\n{tail}"
    if kind == "format" or rng.random() < 0.3:
        text = " ".join(w.upper() if rng.random() < 0.1 else w for w in words)
        return text.replace(" ", "  ", 5).replace(" ", ", ", 3) + "!"
    return " ".join(words)


_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """tasks.dedup.minhash.normalise_text, copied so that the peer scripts do not import AdapterOps."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def shingles(text: str) -> set[str]:
    words = normalise_text(text).split()
    if len(words) < NGRAM:
        return {" ".join(words)} if words else set()
    return {" ".join(words[k:k + NGRAM]) for k in range(len(words) - NGRAM + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def true_pairs(sets: list[set], families: list[int], minimum: float) -> dict[tuple[int, int], float]:
    members: dict[int, list[int]] = {}
    for index, family in enumerate(families):
        members.setdefault(family, []).append(index)
    pairs = {}
    for group in members.values():
        for x in range(len(group)):
            for y in range(x + 1, len(group)):
                value = jaccard(sets[group[x]], sets[group[y]])
                if value >= minimum:
                    pairs[(group[x], group[y])] = value
    return pairs


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)


def clusters_from_candidates(sets: list[set], candidates) -> list[int]:
    uf = UnionFind(len(sets))
    for i, j in candidates:
        if i != j and jaccard(sets[i], sets[j]) >= THRESHOLD:
            uf.union(i, j)
    return [uf.find(i) for i in range(len(sets))]


def run_adapterops(texts: list[str], workers: int) -> list[int]:
    import pandas as pd

    from adapterops.config import DedupConfig
    from tasks.dedup.clusters import dedup_records

    frame = pd.DataFrame({"id": [str(k) for k in range(len(texts))], "text": texts}, dtype=object)   # the strings as they are
    table = dedup_records(frame, DedupConfig(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, keep="first"),
                          text_columns=("text",), workers=workers)
    return table["cluster_id"].astype(int).tolist()


def run_datasketch(texts: list[str]) -> list[int]:
    """The documented usage: one MinHash per document, update_batch, MinHashLSH insert then query."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(BANDS, NUM_PERM // BANDS))
    sets, minhashes = [], []
    for key, text in enumerate(texts):
        shingle_set = shingles(text)
        sets.append(shingle_set)
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingle_set])
        minhashes.append(m)
        lsh.insert(key, m)
    candidates = ((key, other) for key, m in enumerate(minhashes) for other in lsh.query(m) if other > key)
    return clusters_from_candidates(sets, candidates)


def run_rensa(texts: list[str]) -> list[int]:
    """rensa: RMinHash.from_token_sets for all documents, RMinHashLSH insert_many + query_all."""
    from rensa import RMinHash, RMinHashLSH

    sets = [shingles(text) for text in texts]
    minhashes = RMinHash.from_token_sets([list(s) for s in sets], num_perm=NUM_PERM, seed=1)
    lsh = RMinHashLSH(THRESHOLD, NUM_PERM, BANDS)
    lsh.insert_many(minhashes)
    candidates = ((key, other) for key, found in enumerate(lsh.query_all(minhashes)) for other in found if other > key)
    return clusters_from_candidates(sets, candidates)


def quality(clusters: list[int], sets: list[set], truth: dict[tuple[int, int], float]) -> dict:
    """Recall on true pairs at J >= 0.85, and merges below 0.6 (record vs its cluster's first member)."""
    found = sum(clusters[i] == clusters[j] for (i, j), value in truth.items() if value >= 0.85)
    wanted = sum(value >= 0.85 for value in truth.values())
    false_merges = sum(1 for k, root in enumerate(clusters) if root != k and jaccard(sets[k], sets[root]) < 0.6)
    return {"recall@0.85": found / wanted if wanted else 1.0, "pairs@0.85": wanted,
            "merged<0.6": false_merges, "removed": sum(root != k for k, root in enumerate(clusters))}


def timed(name: str, run, *args) -> tuple[float, list[int]]:
    started = time.perf_counter()
    clusters = run(*args)
    seconds = time.perf_counter() - started
    print(f"  {name:<22} {seconds:8.2f} s", flush=True)
    return seconds, clusters


def print_table(title: str, results: dict[str, tuple[float, list[int]]], texts: list[str], families: list[int],
                extra: dict[str, str] | None = None, reference: str = "adapterops") -> None:
    """Seconds, ratio to ours (the reference) and quality of each pipeline's clusters against the ground truth."""
    sets = [shingles(t) for t in texts]
    truth = true_pairs(sets, families, 0.0)
    ours = results[reference][0]
    print(f"\n{title}\n{'pipeline':<24} {'seconds':>8} {'vs ours':>8} {'recall@0.85':>12} {'pairs':>7} "
          f"{'merged<0.6':>11} {'removed':>8}  {'':<}")
    for name, (seconds, clusters) in results.items():
        q = quality(clusters, sets, truth)
        print(f"{name:<24} {seconds:8.2f} {seconds / ours:7.2f}x {q['recall@0.85']:12.4f} {q['pairs@0.85']:7d} "
              f"{q['merged<0.6']:11d} {q['removed']:8d}  {(extra or {}).get(name, '')}")
    buckets = [0, 0.6, 0.8, 0.85, 0.9, 0.95, 1.0001]
    histogram = [sum(lo <= v < hi for v in truth.values()) for lo, hi in zip(buckets[:-1], buckets[1:])]
    print("planted pairs by exact Jaccard [0,.6) [.6,.8) [.8,.85) [.85,.9) [.9,.95) [.95,1]:", histogram)


def memory_mode(texts: list[str], families: list[int], args) -> None:
    """Each pipeline in this process, from the strings in memory to cluster ids."""
    run_adapterops(texts[:2000], args.workers)   # compile the kernels (numba caches them on disk)
    results = {"adapterops": timed("adapterops", run_adapterops, texts, args.workers),
               "rensa": timed("rensa", run_rensa, texts)}
    if not args.skip_datasketch:
        results["datasketch documented"] = timed("datasketch documented", run_datasketch, texts)
    print_table("in-process mode (strings in memory → cluster ids)", results, texts, families)


# --- process mode: each pipeline as its own process, from a file on disk to cluster ids on disk -------

def write_jsonl(texts: list[str], path: Path) -> None:
    sources = ("email", "chat", "web-form")
    with path.open("w", encoding="utf-8") as handle:
        for k, text in enumerate(texts):
            handle.write(json.dumps({"id": f"doc-{k:07d}", "source": sources[k % 3], "text": text}) + "\n")


def read_jsonl(path: str) -> tuple[list[str], list[str]]:
    """A plain script's reader: one json.loads per line."""
    ids, texts = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            ids.append(record["id"])
            texts.append(record["text"])
    return ids, texts


def peer_script(name: str, input_path: str, output_path: str) -> None:
    """The rensa or datasketch pipeline as a user's script: JSONL in, CSV of id,cluster_id out."""
    import csv

    ids, texts = read_jsonl(input_path)
    clusters = (run_rensa if name == "rensa" else run_datasketch)(texts)
    with open(output_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "cluster_id"])
        writer.writerows(zip(ids, (ids[c] for c in clusters)))


def run_process(command: list[str], env: dict | None = None) -> dict:
    """Wall seconds, CPU seconds and peak RSS of one child process (GNU time measures the last two when present:
    the rusage of a child forked from this large process would count this process's pages)."""
    timer = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", suffix=".time") as usage:
        wrapped = [str(timer), "-f", "%e %U %S %M", "-o", usage.name, *command] if timer.exists() else command
        started = time.perf_counter()
        result = subprocess.run(wrapped, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        if result.returncode:
            raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr.decode()[-3000:]}")
        if not timer.exists():
            return {"seconds": seconds, "cpu": float("nan"), "rss_gb": float("nan")}
        _, user, system, peak_kb = usage.read().split()[-4:]
    return {"seconds": seconds, "cpu": float(user) + float(system), "rss_gb": int(peak_kb) * 1024 / 1e9}


def clear_install_caches() -> None:
    """What a fresh clone lacks before `make install`: the project's bytecode and numba caches."""
    for package in ("adapterops", "tasks", "flows"):
        for cached in (ROOT / package).rglob("__pycache__/*"):
            if cached.suffix in (".pyc", ".nbi", ".nbc"):
                cached.unlink()


def clusters_of(ids: list[str], cluster_ids: list[str]) -> list[int]:
    """Cluster ids (a member's id) as the position of that member in the input."""
    position = {name: k for k, name in enumerate(ids)}
    return [position[c] for c in cluster_ids]


def process_mode(texts: list[str], families: list[int], args) -> None:
    """Each pipeline as its own process, interleaved round by round, median seconds per pipeline."""
    import pandas as pd

    folder = Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    data = folder / "records.jsonl"
    write_jsonl(texts, data)
    ids = [f"doc-{k:07d}" for k in range(len(texts))]
    print(f"\nprocess mode: {data} ({data.stat().st_size / 1e6:.0f} MB), {args.repeats} rounds, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cli = [sys.executable, "-c", "from cli.main import main; main()", "dedup", str(data)]
    warm_up = [sys.executable, "-m", "tasks.dedup"]   # what `make install` runs after pip
    peer = [sys.executable, str(Path(__file__).resolve()), "--input", str(data)]
    runs: dict[str, list[dict]] = {}
    outputs: dict[str, Path] = {}
    for round_ in range(args.repeats):
        plan = [("adapterops cold", None), ("adapterops warm", None), ("rensa script", "rensa")]
        if not args.skip_datasketch and round_ < args.datasketch_repeats:
            plan.append(("datasketch documented", "datasketch"))
        for name, peer_name in plan:
            out = folder / name.replace(" ", "-")
            if peer_name:
                command = peer + ["--peer", peer_name, "--output", str(out) + ".csv"]
                outputs[name] = Path(str(out) + ".csv")
            else:
                command = cli + ["--out", str(out)]
                outputs[name] = out / "duplicates.parquet"
                if name.endswith("cold"):
                    clear_install_caches()
                    run_process(warm_up, env)
            load = os.getloadavg()[0]
            runs.setdefault(name, []).append(run_process(command, env) | {"load": load})
            last = runs[name][-1]
            print(f"  round {round_ + 1} {name:<22} {last['seconds']:7.2f} s  cpu {last['cpu']:6.2f} s  "
                  f"peak {last['rss_gb']:.2f} GB  load {load:.2f}", flush=True)
    results, extra = {}, {}
    for name, measured in runs.items():
        table = pd.read_parquet(outputs[name]) if outputs[name].suffix == ".parquet" else pd.read_csv(outputs[name])
        if len(table) != len(texts) or table["id"].tolist() != ids:
            raise SystemExit(f"{name}: {len(table)} output rows for {len(texts)} input records, or not in input order")
        seconds = statistics.median(r["seconds"] for r in measured)
        results[name] = (seconds, clusters_of(ids, table["cluster_id"].astype(str).tolist()))
        extra[name] = (f"median of {len(measured)}: " + ", ".join(f"{r['seconds']:.2f}" for r in measured)
                       + f" s; cpu {statistics.median(r['cpu'] for r in measured):.2f} s"
                       + f"; peak {max(r['rss_gb'] for r in measured):.2f} GB")
    results = {name: results[name] for name in sorted(results, key=lambda n: n != "adapterops warm")}
    print_table("process mode (JSONL file → cluster ids on disk, each its own process)", results, texts, families, extra,
                reference="adapterops warm")
    seconds = {name: value[0] for name, value in results.items()}
    print(f"adapterops / rensa script: warm {seconds['adapterops warm'] / seconds['rensa script']:.2f}x, "
          f"cold {seconds['adapterops cold'] / seconds['rensa script']:.2f}x")
    if "datasketch documented" in seconds:
        print(f"datasketch documented / adapterops: warm {seconds['datasketch documented'] / seconds['adapterops warm']:.1f}x, "
              f"cold {seconds['datasketch documented'] / seconds['adapterops cold']:.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=125_000, help="documents in the generated corpus")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="threads for the AdapterOps kernels (in-process mode)")
    parser.add_argument("--mode", choices=["both", "memory", "process"], default="both")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the process mode (medians are reported)")
    parser.add_argument("--datasketch-repeats", type=int, default=1, help="rounds that include the slow datasketch peer")
    parser.add_argument("--skip-datasketch", action="store_true", help="leave out the slow documented-usage peer")
    parser.add_argument("--peer", choices=["rensa", "datasketch"], help=argparse.SUPPRESS)   # process mode's scripts
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_script(args.peer, args.input, args.output)
        return
    texts, families = make_corpus(args.docs, args.seed)
    words = sum(len(t.split()) for t in texts) / len(texts)
    print(f"corpus: {len(texts)} documents, {words:.0f} words on average, seed {args.seed}")
    if args.mode in ("both", "memory"):
        memory_mode(texts, families, args)
    if args.mode in ("both", "process"):
        process_mode(texts, families, args)


if __name__ == "__main__":
    main()
