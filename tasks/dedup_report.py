"""A duplicate-removal report the data owner can read: counts, largest clusters side by side, Jaccard histogram."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adapterops.escaping import md_cell, md_code

HISTOGRAM_EDGES = [0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0]
SAMPLE_CHARS = 300


def jaccard_histogram(table: pd.DataFrame) -> list[dict]:
    """Near-duplicates by their Jaccard to the kept record, in fixed bins (the last bin includes 1.0)."""
    near = table.loc[table["kind"] == "near", "jaccard"].to_numpy()
    counts, _ = np.histogram(near, bins=HISTOGRAM_EDGES)
    return [{"from": lo, "to": hi, "records": int(c)} for lo, hi, c in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], counts)]


def counts_by_source(table: pd.DataFrame, sources: pd.Series | None) -> list[dict]:
    """Input, kept, exact and near duplicates per source (one row 'all' when there is no source column)."""
    source = (sources.fillna("(none)").astype(str).to_numpy() if sources is not None
              else np.full(len(table), "all", dtype=object))
    frame = pd.DataFrame({"source": source, "kept": table["kept"].to_numpy(), "kind": table["kind"].to_numpy()})
    rows = []
    for name, part in frame.groupby("source", sort=True):
        rows.append({"source": name, "input": len(part), "kept": int(part["kept"].sum()),
                     "exact": int((part["kind"] == "exact").sum()), "near": int((part["kind"] == "near").sum())})
    return rows


def cluster_sizes(table: pd.DataFrame, limit: int = 5) -> pd.Series:
    """Removed records per cluster for the `limit` largest clusters (cluster_id -> size), largest first."""
    removed = table[~table["kept"].astype(bool)]
    return removed.groupby("cluster_id").size().sort_values(ascending=False, kind="stable").head(limit)


def largest_clusters(table: pd.DataFrame, texts: dict[str, str], limit: int = 5, members: int = 3) -> list[dict]:
    """The biggest clusters: the kept record's text beside a few removed ones, with their Jaccard."""
    removed = table[~table["kept"]]
    clusters = []
    for cluster_id, size in cluster_sizes(table, limit).items():
        part = removed[removed["cluster_id"] == cluster_id].sort_values("jaccard", kind="stable").head(members)
        clusters.append({"kept_id": cluster_id, "size": int(size) + 1,
                         "kept_text": texts.get(cluster_id, "")[:SAMPLE_CHARS],
                         "duplicates": [{"id": r.id, "kind": r.kind, "jaccard": round(float(r.jaccard), 4),
                                         "text": texts.get(r.id, "")[:SAMPLE_CHARS]} for r in part.itertuples()]})
    return clusters


def build_report(table: pd.DataFrame, texts: dict[str, str], sources: pd.Series | None, settings: dict) -> dict:
    """Everything report.json holds; `texts` needs only the records named in the largest clusters."""
    kinds = table["kind"].value_counts()
    return {"settings": settings,
            "counts": {"input": len(table), "kept": int(table["kept"].sum()), "exact": int(kinds.get("exact", 0)),
                       "near": int(kinds.get("near", 0)), "removed": int((~table["kept"]).sum())},
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
