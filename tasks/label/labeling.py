"""Labeling round trips: a corpus version's records out to annotators, their decisions back into curation.

Export writes Label Studio tasks (with the labeling interface to create the project from) or JSONL.
Every task carries where it came from: the corpus pipeline, version and digest, and the record's own
digest. On the way back a decision applies only to the record it was made on: when the record's
content has changed since the export, the decision is stale and is reported, not applied.

A decision is one of: accept (the record stays as it is), correct (its completion is replaced by the
annotator's) or reject (it is quarantined with the annotator's note). Rejections count as quarantined
records, so the corpus accounting still adds up.
"""

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import pandas as pd

from adapterops.errors import AdapterOpsError
from adapterops.escaping import plain_text
from adapterops.refs import CorpusRef, LabelResult
from adapterops.storage import file_digest, write_json, write_parquet, write_text
from tasks.corpus.versions import CANONICAL_FIELDS
from tasks.label.argilla import argilla_files
from tasks.label.files import edited_in_place, normal_verdict, read_label_files
from tasks.label.outcomes import reject_failing_corrections
from tasks.label.policy import agreement_by_round, agreement_metrics, disputed_tasks, settle
from tasks.records.contract import Contract
from tasks.records.quarantine import QUARANTINE_FIELDS, quarantine_row

VERDICTS = ("accept", "correct", "reject")
LABEL_FORMATS = ("label-studio", "jsonl")
TASK_PROVENANCE = ("record_id", "record_digest", "corpus_pipeline", "corpus_version", "corpus_digest")


def label_studio_interface(format_hint: str | None = None) -> str:
    """The labeling interface: a verdict, then the correction box (pre-filled with the current completion,
    shown only with `correct`) or the note (required, shown only with `reject`); every box has a heading,
    and the contract's format for the completion is shown above the correction."""
    hint = (f'\n    <Header value="Required format: {escape_xml(format_hint)}" size="6"/>' if format_hint else "")
    return f"""<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Completion"/>
  <Text name="completion" value="$completion"/>
  <Header value="Verdict"/>
  <Choices name="verdict" toName="completion" choice="single" required="true" showInline="true"
           requiredMessage="Choose a verdict: accept, correct or reject.">
    <Choice value="accept"/>
    <Choice value="correct"/>
    <Choice value="reject"/>
  </Choices>
  <View visibleWhen="choice-selected" whenTagName="verdict" whenChoiceValue="correct">
    <Header value="Corrected completion (edit the current one)"/>{hint}
    <TextArea name="corrected_completion" toName="completion" value="$completion" rows="6" maxSubmissions="1"
              editable="true" required="true" requiredMessage="With verdict correct, give the corrected completion."/>
  </View>
  <View visibleWhen="choice-selected" whenTagName="verdict" whenChoiceValue="reject">
    <Header value="Note: why is the record rejected? (required)"/>
    <TextArea name="note" toName="completion" rows="2" maxSubmissions="1" editable="true" required="true"
              requiredMessage="With verdict reject, say why in the note."/>
  </View>
</View>
"""


def escape_xml(text: str) -> str:
    """An attribute value: XML-escaped, on one line, and without `$` (Label Studio reads $name as task data)."""
    return escape(" ".join(str(text).replace("$", "").split()), {'"': "&quot;"})


LABEL_STUDIO_INTERFACE = label_studio_interface()


def format_hint(contract) -> str | None:
    """How a completion must look, from the contract's schema (shown to annotators)."""
    column = contract.schema_.get("completion")
    return column.hint if column is not None else None


def record_digest(record: dict) -> str:
    """sha256 of a record's canonical fields: the same content, the same digest."""
    values = [record.get(name) for name in CANONICAL_FIELDS]
    values = [None if isinstance(v, float) and v != v else v for v in values]   # NaN and None alike
    payload = json.dumps(values, ensure_ascii=False, default=str).encode("utf-8")
    return "sha256:" + hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True)
class Decision:
    record_id: str
    record_digest: str
    corpus_digest: str
    verdict: str
    completion: str | None     # the corrected completion, with verdict "correct"
    annotator: str
    time: str
    note: str
    file: str
    where: str = ""            # the task in its file: "task 12, line 40", "line 7"
    task: str = ""             # the task's id in the labeling tool, when it has one


# --- export -----------------------------------------------------------------------------------------

def export_tasks(frame: pd.DataFrame, corpus: CorpusRef, fmt: str) -> list[dict]:
    """One task per record, in the format's shape, each carrying its provenance."""
    if fmt not in LABEL_FORMATS:
        raise AdapterOpsError(f"label format must be {' or '.join(LABEL_FORMATS)}, not {fmt!r}.")
    tasks = []
    for record in frame.to_dict("records"):
        provenance = {"record_id": str(record["id"]), "record_digest": record_digest(record),
                      "corpus_pipeline": corpus.pipeline, "corpus_version": int(corpus.version),
                      "corpus_digest": corpus.digest}
        texts = {"prompt": record.get("prompt") or "", "completion": record.get("completion") or ""}
        if fmt == "label-studio":
            # The interface shows record text only through <Text> tags, which Label Studio renders as plain text
            # (never as HTML): HTML-escaping would show annotators "&lt;" and leak into their corrections.
            # Control sequences are dropped; the record digest still names the stored record.
            tasks.append({"data": {k: plain_text(v) for k, v in texts.items()} | provenance})
        else:
            tasks.append(provenance | texts | {"verdict": None, "corrected_completion": None, "note": None,
                                               "annotator": None})
    return tasks


# --- import -----------------------------------------------------------------------------------------

def _annotator(value) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("id") or "")
    return "" if value is None else str(value)


def _label_studio_values(annotation: dict) -> dict:
    """verdict (case and spaces ignored), corrected_completion and note from an annotation's result regions."""
    values = {}
    for region in annotation.get("result") or []:
        value = region.get("value") or {}
        if region.get("from_name") == "verdict" and value.get("choices"):
            values["verdict"] = normal_verdict(value["choices"][0])
        elif region.get("from_name") in ("corrected_completion", "note") and value.get("text"):
            values[region["from_name"]] = "\n".join(value["text"])
    return values


def annotations_from_label_studio(tasks: list, file: str = "") -> tuple[list[Decision], list[dict]]:
    """Every annotation of Label Studio-shaped tasks (skipped ones aside) with its annotator, time and note, and a
    problem row for each task without a usable one (`unlabeled`: no annotation at all).

    A task read by tasks.label.files names its file and place in `origin`; others are named by position.
    """
    if not isinstance(tasks, list):
        raise AdapterOpsError(f"{file}: a Label Studio export is a JSON list of tasks; export the project as JSON.")
    rows = []
    for number, task in enumerate(tasks, start=1):
        data = task.get("data") if isinstance(task, dict) else None
        origin = (task.get("origin") if isinstance(task, dict) else None) or {"file": file, "where": f"task #{number}"}
        task_id = str(task.get("id") or "") if isinstance(task, dict) else ""
        kept = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")] \
            if isinstance(data, dict) else []
        rows += [(data, _label_studio_values(a), _annotator(a.get("completed_by")),
                  str(a.get("updated_at") or a.get("created_at") or ""), origin, task_id) for a in kept] \
            or [(data, {}, None, None, origin, task_id)]
    return _decisions(rows)


def decisions_from_label_studio(tasks: list, file: str = "", policy: str = "latest",
                                reviewer: str | None = None) -> tuple[list[Decision], list[dict]]:
    """The decision that settles each task under the policy, and a row for every task or annotation not applied
    (problems, and annotations that agreed, were overruled or are disputed)."""
    annotations, problems = annotations_from_label_studio(tasks, file)
    settled, others = settle(annotations, policy, reviewer)
    return settled, problems + others


def _decisions(rows) -> tuple[list[Decision], list[dict]]:
    decisions, problems = [], []
    for data, values, annotator, time, origin, task_id in rows:
        record_id = str((data or {}).get("record_id", "")) if isinstance(data, dict) else ""
        problem = values.get("problem")
        if not problem and (not isinstance(data, dict) or any(data.get(k) in (None, "") for k in TASK_PROVENANCE)):
            problem = "missing_provenance: not a task exported by `adapterops label export`"
        elif not problem and "verdict" not in values:
            problem = "unlabeled"
        elif not problem and values["verdict"] not in VERDICTS:
            problem = f"unknown_verdict: {values['verdict']!r} (use {', '.join(VERDICTS)})"
        elif not problem and values["verdict"] == "correct" and not values.get("corrected_completion", "").strip():
            problem = "correct_without_text: verdict correct needs the corrected completion"
        elif not problem and values["verdict"] == "correct" and values["corrected_completion"] == data.get("completion"):
            # the interface pre-fills the box with the completion: submitted untouched, it changes nothing
            problem = "correct_unchanged: verdict correct, but the correction is the current completion; edit it or accept"
        if problem:
            problems.append({"record_id": record_id, "file": origin.get("file", ""), "where": origin.get("where", ""),
                             "outcome": problem.split(":")[0], "detail": problem, "task": task_id})
            continue
        correction = values.get("corrected_completion") if values["verdict"] == "correct" else None
        decisions.append(Decision(record_id, str(data["record_digest"]), str(data["corpus_digest"]), values["verdict"],
                                  correction, annotator or "", time or "", values.get("note", ""),
                                  origin.get("file", ""), origin.get("where", ""), task_id))
    return decisions, problems


def apply_decisions(frame: pd.DataFrame, decisions: list[Decision]) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """(records with corrections applied and rejections removed, quarantine rows, one report row per decision).

    A later decision on the same record supersedes an earlier one (files in the order given). A
    decision on a record that is not in the input, or whose content changed since its export, is
    reported and not applied.
    """
    latest: dict[str, Decision] = {}
    report = []
    for decision in decisions:
        if decision.record_id in latest:
            report.append(_report(latest[decision.record_id], "superseded"))
        latest[decision.record_id] = decision
    ids = frame["id"].astype(str)
    touched = ids.isin(list(latest)).to_numpy()    # only records with a decision go through Python
    rejected, corrected, quarantine = [], {}, []
    for position, record in zip(frame.index[touched], frame[touched].to_dict("records")):
        decision = latest.pop(str(record["id"]))
        if decision.record_digest != record_digest(record):
            report.append(_report(decision, "stale"))
            continue
        report.append(_report(decision, "applied"))
        if decision.verdict == "reject":
            rejected.append(position)
            reason = f"label_rejected by {decision.annotator or 'an annotator'}" + (f": {decision.note}" if decision.note else "")
            quarantine.append(quarantine_row(record["id"], record.get("input_file"), record.get("input_line"),
                                             "label", reason, str(record.get("prompt"))))
        elif decision.verdict == "correct":
            corrected[position] = decision.completion
    kept = frame.drop(index=rejected)
    if corrected:
        kept = kept.copy()
        kept.loc[list(corrected), "completion"] = list(corrected.values())
    report += [_report(d, "not_in_input") for d in latest.values()]
    return kept, quarantine, report


def _report(decision: Decision, outcome: str) -> dict:
    row = asdict(decision)
    return {"record_id": row.pop("record_id"), "file": row.pop("file"), "outcome": outcome,
            "detail": f"{decision.verdict} by {decision.annotator or '?'}", **row}


def read_decisions(paths: list[str], frame: pd.DataFrame | None = None, policy: str = "latest",
                   reviewer: str | None = None) -> tuple[list[Decision], list[dict]]:
    """The decisions that settle each task under the policy, and a row for everything not applied (problems,
    annotations that agreed, were overruled or are disputed)."""
    annotations, problems = read_annotations(paths, frame)
    settled, others = settle(annotations, policy, reviewer)
    return settled, problems + others


def read_annotations(paths: list[str], frame: pd.DataFrame | None = None) -> tuple[list[Decision], list[dict]]:
    """Every annotation and the problems of annotated files (every format tasks.label.files reads), problems in
    file order. With the records the tasks came from, an edit made in the file under verdict accept is a problem too.
    """
    return annotations_of(read_label_files(paths), paths, frame)


def annotations_of(read: tuple[list[dict], list[dict]], paths: list[str],
                   frame: pd.DataFrame | None = None) -> tuple[list[Decision], list[dict]]:
    """read_annotations on what read_label_files already returned (tasks, problems)."""
    tasks, problems = read[0], list(read[1])
    if frame is not None:
        tasks, edited = edited_in_place(tasks, frame, record_digest)
        problems += edited
    annotations, unusable = annotations_from_label_studio(tasks)
    order = {path: n for n, path in enumerate(map(str, paths))}
    return annotations, sorted(problems + unusable, key=lambda p: (order.get(p["file"], len(order)), _line(p["where"])))


def _line(where: str) -> int:
    found = re.search(r"line (\d+)", where or "")
    return int(found.group(1)) if found else 0


# --- wrappers: read and write the stage's files ------------------------------------------------------

REPORT_COLUMNS = ["record_id", "file", "where", "outcome", "detail", "record_digest", "corpus_digest", "verdict",
                  "completion", "annotator", "time", "note", "task"]


def label_file(records_path: str, label_paths: list[str], stage_dir, contract: Contract | None = None,
               policy: str = "latest", reviewer: str | None = None) -> LabelResult:
    """labeled.parquet, label_quarantine.parquet (rejections), labels.parquet (one row per annotation with its
    outcome) and labels_agreement.json (agreement per round, the disputed tasks).

    With a contract, corrections it would quarantine are `correction_rejected` here, named with their task.
    """
    stage_dir = Path(stage_dir)
    frame = pd.read_parquet(records_path)
    annotations, problems = read_annotations(label_paths, frame)
    decisions, others = settle(annotations, policy, reviewer)   # disputed tasks are settled out before the contract
    labeled, quarantine, report = apply_decisions(frame, decisions)
    if contract is not None:
        labeled, rejected, report = reject_failing_corrections(labeled, report, contract)
        quarantine += rejected
    disputed = disputed_tasks(others)
    rounds = agreement_by_round(annotations)
    write_json({"policy": policy, "reviewer": reviewer, "rounds": rounds, "disputed": disputed},
               stage_dir / "labels_agreement.json")
    report = pd.DataFrame(report + problems + others, columns=REPORT_COLUMNS)
    write_parquet(labeled, stage_dir / "labeled.parquet")
    write_parquet(pd.DataFrame(quarantine, columns=list(QUARANTINE_FIELDS)), stage_dir / "label_quarantine.parquet")
    write_parquet(report, stage_dir / "labels.parquet")
    outcomes = report["outcome"].value_counts().to_dict()
    applied = report[report["outcome"] == "applied"]["verdict"].value_counts().to_dict()
    return LabelResult(records=str(stage_dir / "labeled.parquet"), quarantine=str(stage_dir / "label_quarantine.parquet"),
                       report=str(stage_dir / "labels.parquet"), input=len(frame), kept=len(labeled),
                       quarantined=len(quarantine), files=[{"path": p, "digest": file_digest(Path(p))} for p in label_paths],
                       agreement=str(stage_dir / "labels_agreement.json"), policy=policy, reviewer=reviewer,
                       metrics=agreement_metrics(rounds, len(disputed)), disputed=len(disputed),
                       outcomes={k: int(v) for k, v in outcomes.items()},
                       applied={v: int(applied.get(v, 0)) for v in VERDICTS})


def version_tasks(corpus_folder: str, corpus: CorpusRef, fmt: str, split: str = "train", limit: int | None = None,
                  seed: int = 0, ids: set[str] | None = None) -> list[dict]:
    """A version's records (a split, or a seeded sample of it; only those named in `ids` when given) as labeling
    tasks."""
    splits = {"train": ["train"], "heldout": ["heldout"], "all": ["train", "heldout"]}
    if split not in splits:
        raise AdapterOpsError(f"--split must be train, heldout or all, not {split!r}.")
    frame = pd.concat([pd.read_parquet(Path(corpus_folder) / f"{name}.parquet") for name in splits[split]],
                      ignore_index=True)
    if ids is not None:
        frame = frame[frame["id"].astype(str).isin(ids)]
    if limit is not None and limit < len(frame):
        frame = frame.sample(n=limit, random_state=seed).sort_index()
    return export_tasks(frame, corpus, fmt)


def export_file(corpus_folder: str, corpus: CorpusRef, fmt: str, out_path, split: str = "train",
                limit: int | None = None, seed: int = 0, hint: str | None = None, ids: set[str] | None = None) -> dict:
    """Write a version's records as labeling tasks to out_path (and, for Label Studio, its interface next to it).

    For Argilla, out_path is a folder in the argilla SDK's `Dataset.to_disk` layout.
    """
    tasks = version_tasks(corpus_folder, corpus, "jsonl" if fmt == "argilla" else fmt, split, limit, seed, ids)
    out_path = Path(out_path)
    interface = None
    if fmt == "argilla":
        if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
            raise AdapterOpsError(f"{out_path} exists and is not an empty folder; an Argilla export is a folder, "
                                  "pass a new one with --out.")
        name = f"{corpus.pipeline}-v{int(corpus.version)}"
        for relative, text in argilla_files(tasks, name, hint).items():
            write_text(text, out_path / relative)
    elif fmt == "label-studio":
        write_json(tasks, out_path)
        interface = out_path.with_name(out_path.stem + ".interface.xml")
        write_text(label_studio_interface(hint), interface)
    else:
        write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks), out_path)
    return {"tasks": str(out_path), "interface": str(interface) if interface else None, "count": len(tasks)}


def listed_ids(path) -> set[str]:
    """The `id` of every line of a JSONL file (a watch run's candidates.jsonl), for exporting only those records."""
    path = Path(path)
    if not path.is_file():
        raise AdapterOpsError(f"{path} does not exist; pass a JSONL file of records with an `id` each, such as a watch "
                              "run's candidates.jsonl.")
    ids = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                raise AdapterOpsError(f"{path} line {number} is not a JSON object with an `id`; pass a JSONL file "
                                      "of records.") from None
    return ids
