"""A duplicate-removal report the data owner can read: counts, largest clusters side by side, Jaccard histogram."""

from __future__ import annotations

import numpy as np

from adapterops.escaping import md_cell, md_code

HISTOGRAM_EDGES = [0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0]
SAMPLE_CHARS = 300

# `table` below: dedup's result columns as numpy arrays (id, cluster_id, kept, duplicate_of, jaccard, kind),
# one entry per input record; no pandas, so the dedup command starts without it.


def jaccard_histogram(table: dict) -> list[dict]:
    """Near-duplicates by their Jaccard to the kept record, in fixed bins (the last bin includes 1.0)."""
    near = np.asarray(table["jaccard"])[np.asarray(table["kind"]) == "near"]
    counts, _ = np.histogram(near, bins=HISTOGRAM_EDGES)
    return [{"from": lo, "to": hi, "records": int(c)} for lo, hi, c in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], counts)]


def counts_by_source(table: dict, sources: np.ndarray | None) -> list[dict]:
    """Input, kept, exact and near duplicates per source (one row 'all' when there is no source column)."""
    rows = len(table["kept"])
    names = (np.array(["(none)" if s is None or s != s else str(s) for s in sources], dtype=object)
             if sources is not None else np.full(rows, "all", dtype=object))
    kept, kind = np.asarray(table["kept"], dtype=bool), np.asarray(table["kind"])
    found, group = np.unique(names, return_inverse=True) if rows else (np.array([], dtype=object), np.zeros(0, int))
    def per_group(mask):
        return np.bincount(group[mask], minlength=len(found))
    counts = [per_group(np.ones(rows, bool)), per_group(kept), per_group(kind == "exact"), per_group(kind == "near")]
    return [{"source": str(name), "input": int(i), "kept": int(k), "exact": int(e), "near": int(n)}
            for name, i, k, e, n in zip(found, *counts)]


def cluster_sizes(table: dict, limit: int = 5) -> list[tuple[str, int]]:
    """(cluster_id, removed records) for the `limit` largest clusters, largest first (ties: by cluster id)."""
    removed = np.asarray(table["cluster_id"])[~np.asarray(table["kept"], dtype=bool)]
    if not len(removed):
        return []
    clusters, sizes = np.unique(removed, return_counts=True)
    order = np.argsort(-sizes, kind="stable")[:limit]
    return [(str(clusters[k]), int(sizes[k])) for k in order]


def report_rows(table: dict, limit: int = 5) -> np.ndarray:
    """Positions of the records the report shows: the largest clusters' keepers and their removed records."""
    top = [cluster for cluster, _ in cluster_sizes(table, limit)]
    return np.flatnonzero(np.isin(np.asarray(table["cluster_id"]), top)) if top else np.zeros(0, np.int64)


def largest_clusters(table: dict, texts: dict[str, str], limit: int = 5, members: int = 3) -> list[dict]:
    """The biggest clusters: the kept record's text beside a few removed ones, with their Jaccard."""
    removed = np.flatnonzero(~np.asarray(table["kept"], dtype=bool))
    cluster_of = np.asarray(table["cluster_id"])[removed]
    clusters = []
    for cluster_id, size in cluster_sizes(table, limit):
        part = removed[cluster_of == cluster_id]
        part = part[np.argsort(np.asarray(table["jaccard"])[part], kind="stable")[:members]]
        clusters.append({"kept_id": cluster_id, "size": size + 1,
                         "kept_text": texts.get(cluster_id, "")[:SAMPLE_CHARS],
                         "duplicates": [{"id": str(table["id"][r]), "kind": str(table["kind"][r]),
                                         "jaccard": round(float(table["jaccard"][r]), 4),
                                         "text": texts.get(str(table["id"][r]), "")[:SAMPLE_CHARS]} for r in part]})
    return clusters


def build_report(table: dict, texts: dict[str, str], sources: np.ndarray | None, settings: dict) -> dict:
    """Everything report.json holds; `texts` needs only the records named in the largest clusters."""
    kept, kind = np.asarray(table["kept"], dtype=bool), np.asarray(table["kind"])
    return {"settings": settings,
            "counts": {"input": len(kept), "kept": int(kept.sum()), "exact": int((kind == "exact").sum()),
                       "near": int((kind == "near").sum()), "removed": int((~kept).sum())},
            "by_source": counts_by_source(table, sources), "jaccard_histogram": jaccard_histogram(table),
            "largest_clusters": largest_clusters(table, texts)}


def report_markdown(report: dict) -> str:
    """The report as markdown for the Prefect UI: counts, per source, histogram, clusters side by side.

    Ids, sources and texts come from the records: every one goes through adapterops.escaping.
    """
    c = report["counts"]
    lines = [f"**{c['input']}** records in, **{c['kept']}** kept, **{c['exact']}** exact and **{c['near']}** "
             f"near duplicates removed.", "", "| source | input | kept | exact | near |", "|---|---|---|---|---|"]
    lines += [f"| {md_cell(r['source'])} | {r['input']} | {r['kept']} | {r['exact']} | {r['near']} |"
              for r in report["by_source"]]
    lines += ["", "| Jaccard to kept record | near duplicates |", "|---|---|"]
    lines += [f"| {h['from']:.2f}–{h['to']:.2f} | {h['records']} |" for h in report["jaccard_histogram"]]
    for cluster in report["largest_clusters"]:
        kept = cluster["kept_id"]
        lines += ["", f"### Cluster of {cluster['size']} kept as {md_code(kept)}", "",
                  "| record | Jaccard | text |", "|---|---|---|",
                  f"| {md_code(kept, in_table=True)} (kept) | | {md_cell(cluster['kept_text'])} |"]
        lines += [f"| {md_code(d['id'], in_table=True)} ({d['kind']}) | {d['jaccard']:.3f} | {md_cell(d['text'])} |"
                  for d in cluster["duplicates"]]
    return "\n".join(lines)
