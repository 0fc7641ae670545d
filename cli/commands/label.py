"""`adapterops label export | push | pull | check`: a corpus version's records out to annotators, their decisions checked.

Decisions come back into the corpus through the config's `labels:` list: the next curation applies
them (corrections, rejections) under the config's labeling policy, and the result is a new version for
the owner to approve. `push` and `pull` talk to a Label Studio server through its API; `export` writes
files for offline use.
"""

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from adapterops.escaping import terminal
from cli.common import setup

app = typer.Typer(no_args_is_help=True, help="Labeling: export a corpus version as tasks, check annotated exports.")
out = Console()
NAME = typer.Option("demo", "--name", help="Pipeline name (the config's `name`).")
MAX_NAMED = 50
CONFIG = typer.Option(None, "--config", help="Config whose `labeling:` section gives the policy, reviewer and server.")
PROJECT = typer.Option(..., "--project", help="Label Studio project: its id, its URL (http://HOST/projects/ID), "
                                             "or a title (push creates the project when none has it).")


def _labeling(config: Path | None):
    from adapterops.config import Config, load_config

    return (load_config(config) if config else Config()).labeling


def _version(name: str, version: int):
    """The version's MLflow run and the reference its tasks carry."""
    from tasks.corpus import get_version, stored_ref

    setup()
    run = get_version(name, version)
    return run, stored_ref(run)


@app.command()
def export(version: int = typer.Argument(..., help="Corpus version to export."),
           out_path: Path = typer.Option(..., "--out", help="Tasks file: .json for Label Studio, .jsonl for JSONL; "
                                                            "a new folder for Argilla."),
           fmt: str = typer.Option("", "--format", help="label-studio, jsonl or argilla (default: from the --out "
                                                        "suffix: .json, .jsonl)."),
           split: str = typer.Option("train", help="Records to export: train, heldout or all."),
           limit: int = typer.Option(None, min=1, help="Export a seeded random sample of this many records."),
           seed: int = typer.Option(0, help="Seed of the sample."),
           name: str = NAME) -> None:
    """Write a version's records as labeling tasks, each carrying its corpus digest and record digest."""
    from tasks.label import export_file, format_hint
    from tasks.corpus import run_contract

    fmt = fmt or ("label-studio" if out_path.suffix.lower() == ".json" else "jsonl")
    run, corpus = _version(name, version)
    hint = format_hint(run_contract(run))
    written = export_file(corpus.path, corpus, fmt, out_path, split, limit, seed, hint)
    out.print(f"{written['count']} tasks from {name} corpus v{version} → {written['tasks']}")
    if written["interface"]:
        out.print(f"Label Studio labeling interface → {written['interface']} (paste it into the project's settings)")
    how = {"label-studio": "export the Label Studio project as JSON (with all tasks)",
           "argilla": "load the folder with `rg.Dataset.from_disk`, annotate, then write it back with "
                      "`dataset.to_disk` (or `dataset.records.to_json`)",
           "jsonl": "fill in verdict (accept, correct or reject), corrected_completion, note and annotator"}[fmt]
    out.print(f"After annotating, {how}, and list the file under `labels:` in the config "
              f"(for Argilla: the folder's records.json).")


@app.command()
def push(version: int = typer.Argument(..., help="Corpus version whose records become tasks."),
         project: str = PROJECT,
         split: str = typer.Option("train", help="Records to push: train, heldout or all."),
         limit: int = typer.Option(None, min=1, help="Push a seeded random sample of this many records."),
         seed: int = typer.Option(0, help="Seed of the sample."),
         config: Path = CONFIG, name: str = NAME) -> None:
    """Create or update a Label Studio project: the labeling interface and the tasks it does not hold yet."""
    from tasks.label import (
        connect,
        format_hint,
        label_studio_interface,
        parse_project,
        push_tasks,
        server,
        version_tasks,
    )
    from tasks.corpus import run_contract

    ref = parse_project(project)
    url, token = server(ref, _labeling(config).label_studio_url)
    run, corpus = _version(name, version)
    hint = format_hint(run_contract(run))
    tasks = version_tasks(corpus.path, corpus, "label-studio", split, limit, seed)
    pushed = push_tasks(connect(url, token), url, ref, tasks, label_studio_interface(hint))
    state = "created" if pushed["created"] else "updated"
    out.print(terminal(f"Project {pushed['title']} ({state}) {pushed['url']}: {pushed['added']} tasks added, "
                       f"{pushed['held']} already there (same record digest)."), markup=False, highlight=False)
    out.print(f"After annotating: `adapterops label pull --name {name} --project {pushed['project']} --out FILE.json`.")


@app.command()
def pull(project: str = PROJECT,
         out_path: Path = typer.Option(..., "--out", help="Labels file (.json, Label Studio's export shape) to write."),
         config: Path = CONFIG, name: str = NAME) -> None:
    """Fetch every task of a Label Studio project, unlabeled ones included, with all annotations and annotators."""
    from adapterops.storage import write_json
    from tasks.label import annotations_from_label_studio, connect, parse_project, pull_tasks, server

    ref = parse_project(project)
    url, token = server(ref, _labeling(config).label_studio_url)
    tasks = pull_tasks(connect(url, token), url, ref)
    write_json(tasks, out_path)
    annotations, problems = annotations_from_label_studio(tasks, str(out_path))
    unlabeled = sum(p["outcome"] == "unlabeled" for p in problems)
    out.print(f"{len(tasks)} tasks ({unlabeled} unlabeled), {len(annotations)} annotations → {out_path}")
    out.print(f"Check it with `adapterops label check {out_path} --name {name}`, then list it under `labels:` "
              "in the config: the next curation applies it.")


@app.command()
def check(files: list[Path] = typer.Argument(..., help="Annotated exports: Label Studio JSON, JSON-MIN or CSV, JSONL, "
                                                       "or an Argilla folder or its records.json."),
          version: int = typer.Option(None, help="Corpus version the tasks came from (default: the one they name)."),
          policy: str = typer.Option(None, help="latest, majority, owner_wins or unanimous (default: the config's)."),
          reviewer: str = typer.Option(None, help="owner_wins: the reviewer (default: the config's)."),
          config: Path = CONFIG, name: str = NAME) -> None:
    """What curation would do with each decision, against the version the tasks came from; problems named by place."""
    import pandas as pd

    from adapterops.config import LabelingConfig, from_options
    from adapterops.errors import AdapterOpsError
    from adapterops.escaping import terminal
    from tasks.corpus import version_records
    from tasks.label import (
        annotations_of,
        apply_decisions,
        disputed_tasks,
        read_label_files,
        reject_failing_corrections,
        settle,
    )
    from tasks.corpus import run_contract

    labeling = _labeling(config)
    settings = from_options(LabelingConfig, {"policy": policy or labeling.policy, "reviewer": reviewer or labeling.reviewer},
                            {"policy": "--policy", "reviewer": "--reviewer"})
    policy, reviewer = settings.policy, settings.reviewer
    paths = [str(f) for f in files]
    read = read_label_files(paths)          # once: the version they name, then the decisions against its records
    if version is not None:
        run, _ = _version(name, version)
    else:
        from tasks.corpus import find_version

        digests = sorted({t["data"]["corpus_digest"] for t in read[0]
                          if isinstance(t.get("data"), dict) and t["data"].get("corpus_digest")})
        if len(digests) != 1:
            raise AdapterOpsError(f"The tasks name {len(digests)} corpus versions; pass the one to check with --version.")
        setup()
        run = find_version(name, digest=digests[0])
        if run is None:
            raise AdapterOpsError(f"No version of corpus {name!r} has digest {digests[0]}; check --name, or pass --version.")
        version = int(run.data.tags["corpus.version"])
    records = version_records(run)
    annotations, problems = annotations_of(read, paths, records)
    decisions, others = settle(annotations, policy, reviewer)
    problems += others
    labeled, _, report = apply_decisions(records, decisions)
    # corrections the contract stored with the version would quarantine, in seconds: only they are checked
    _, _, report = reject_failing_corrections(labeled, report, run_contract(run))
    rows = pd.DataFrame(report + problems, columns=["outcome", "verdict", "record_id", "file", "where", "detail"])
    table = Table("outcome", "verdict", "annotations",
                  title=f"{len(decisions) + len(problems)} rows against {name} corpus v{version}",
                  caption=f"policy {policy}; a row per annotation or unusable task")
    for (outcome, verdict), count in rows.fillna("-").groupby(["outcome", "verdict"]).size().items():
        table.add_row(outcome, verdict, str(count))
    out.print(table)
    named = rows[~rows["outcome"].isin(["applied", "agreed", "disputed"])].fillna("")
    if not named.empty:
        shown = Table("where", "record", "outcome", "detail", title="Not applied, by task")
        for row in named.head(MAX_NAMED).itertuples():
            shown.add_row(terminal(f"{row.file}: {row.where}"), terminal(row.record_id), row.outcome, terminal(row.detail))
        out.print(shown)
        if len(named) > MAX_NAMED:
            out.print(f"… and {len(named) - MAX_NAMED} more (all are in labels.parquet after curation).")
    disputed = disputed_tasks(problems)
    if disputed:
        listing = Table("record", "task", "file", "annotations", title=f"{len(disputed)} disputed tasks "
                                                                       f"(policy {policy}): not applied")
        for d in disputed:
            listing.add_row(terminal(d["record_id"]), terminal(d["task"]), terminal(d["file"]),
                            terminal("; ".join(d["verdicts"])))
        out.print(listing)
