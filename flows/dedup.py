"""dedup at scale: shards sketched in parallel Prefect tasks (threads, or a Dask cluster), then clustered once."""

import json
import shutil
from pathlib import Path

import pandas as pd
from prefect import flow, task

from adapterops.config import DedupConfig
from adapterops.refs import DedupResult
from adapterops.storage import write_parquet
from flows.reporting import publish_markdown
from tasks.dedup import (
    SHARD_ROWS,
    TEXT_COLUMNS,
    concat_sketches,
    empty_sketches,
    finish_dedup,
    load_sketches,
    report_markdown,
    save_sketches,
    sketch_columns,
    sketch_records,
)
from tasks.records import iter_frames


def publish_dedup_report(summary: DedupResult) -> None:
    """The stage's report.json as a Prefect markdown artifact (logged when run outside a flow)."""
    report = json.loads(Path(summary.report).read_text(encoding="utf-8"))
    publish_markdown("dedup-report", "Duplicate removal report", report_markdown(report))


@task(name="dedup-split-shards")
def split_shards(records_path: str, folder: str, shard_rows: int) -> list[str]:
    """The columns dedup reads, written as one small Parquet file per shard (the input is read once, in batches)."""
    columns = sketch_columns(records_path, TEXT_COLUMNS)
    paths = []
    for k, frame in enumerate(iter_frames(records_path, columns=columns, batch_rows=shard_rows)):
        paths.append(str(write_parquet(frame, Path(folder) / f"rows-{k:05d}.parquet")))
    return paths


@task(name="dedup-sketch-shard")
def sketch_shard(shard_path: str, params: DedupConfig, folder: str) -> str:
    """Sketch one shard file; hands back the folder it saved the sketches in (a path, not the arrays)."""
    return save_sketches(sketch_records(pd.read_parquet(shard_path), params, TEXT_COLUMNS), folder)


@flow(name="dedup-sharded")
def dedup_sharded(records_path: str, params: DedupConfig, stage_dir: str, shard_rows: int = SHARD_ROWS,
                  previous_signatures: str | None = None) -> DedupResult:
    """Same outputs as tasks.dedup.stage.dedup_file, with the shards sketched in parallel by the flow's task runner."""
    shards = Path(stage_dir) / "shards"
    paths = split_shards(records_path, str(shards / "rows"), shard_rows)
    futures = [sketch_shard.submit(path, params, str(shards / f"sketches-{k:05d}")) for k, path in enumerate(paths)]
    # memory-mapped parts, copied one by one into the whole: the peak is the sketches once
    current = concat_sketches([load_sketches(f.result(), mmap=True) for f in futures]) if futures \
        else empty_sketches(params.num_perm)
    summary = finish_dedup(records_path, current, params, stage_dir, previous_signatures)
    del current
    shutil.rmtree(shards, ignore_errors=True)   # intermediate: the outputs and signatures/ are written
    publish_dedup_report(summary)
    return summary


def task_runner_for(dask_address: str | None, workers: int = 2):
    """prefect-dask's DaskTaskRunner for an address (or a LocalCluster for 'local'); threads otherwise."""
    if not dask_address:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner

    if dask_address == "local":
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})
    return DaskTaskRunner(address=dask_address)


def run_dedup(records_path: str, params: DedupConfig, stage_dir: str, dask_address: str | None = None,
              workers: int = 2, shard_rows: int = SHARD_ROWS, previous_signatures: str | None = None) -> DedupResult:
    """Run dedup_sharded on the runner the configuration names."""
    runner = task_runner_for(dask_address, workers)
    return dedup_sharded.with_options(task_runner=runner)(records_path, params, stage_dir, shard_rows, previous_signatures)
