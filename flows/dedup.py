"""dedup at scale: shards sketched in parallel Prefect tasks (threads, or a Dask cluster), then clustered once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, task

from tasks.dedup import (DedupParams, concat_sketches, load_sketches, publish_dedup_report, reusable_previous,
                         save_sketches, shard_bounds, sketch_records, write_outputs)

TEXT_COLUMNS = ("prompt", "completion")


@task(name="dedup-sketch-shard")
def sketch_shard(records_path: str, start: int, stop: int, params: DedupParams, folder: str) -> str:
    """Sketch rows [start, stop) of the records file; hands back the folder it saved them in."""
    frame = pd.read_parquet(records_path).iloc[start:stop]
    return save_sketches(sketch_records(frame, params, TEXT_COLUMNS), folder)


@flow(name="dedup-sharded")
def dedup_sharded(records_path: str, params: DedupParams, stage_dir: str, shard_rows: int = 50_000,
                  previous_signatures: str | None = None) -> dict:
    """Same outputs as tasks.dedup.dedup_file, with the shards sketched in parallel by the flow's task runner."""
    shards = Path(stage_dir) / "shards"
    rows = len(pd.read_parquet(records_path, columns=["id"]))
    futures = [sketch_shard.submit(records_path, a, b, params, str(shards / f"{k:05d}"))
               for k, (a, b) in enumerate(shard_bounds(rows, shard_rows))]
    current = concat_sketches([load_sketches(f.result()) for f in futures])
    frame = pd.read_parquet(records_path)
    anchors = reusable_previous(load_sketches(previous_signatures), current.ids.astype(str), params.num_perm) \
        if previous_signatures else None
    summary = write_outputs(frame, concat_sketches([anchors, current]) if anchors is not None else current,
                            params, stage_dir, TEXT_COLUMNS)
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


def run_dedup(records_path: str, params: DedupParams, stage_dir: str, dask_address: str | None = None,
              workers: int = 2, shard_rows: int = 50_000, previous_signatures: str | None = None) -> dict:
    """Run dedup_sharded on the runner the configuration names."""
    runner = task_runner_for(dask_address, workers)
    return dedup_sharded.with_options(task_runner=runner)(records_path, params, stage_dir, shard_rows, previous_signatures)
