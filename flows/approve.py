"""approve: bind an approval to the corpus digest, automatically or by a contract owner."""

import logging
from typing import Literal

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.settings import get_current_settings
from pydantic import Field, create_model

from adapterops.config import Config
from adapterops.errors import AdapterOpsError
from adapterops.escaping import md_code, md_text
from adapterops.refs import CorpusRef
from flows.notify import emit_waiting
from flows.reporting import publish_markdown
from tasks.approve import AUTO_APPROVER, VIA_FORM, current_decision, record_decision, version_review
from tasks.corpus import corpus_contract, find_version

FORM_POLL_SECONDS = 10
MAX_TRIES = 3   # forms shown for one version before the run gives up (the version stays pending)


def human_owners(owners: list[str]) -> list[str]:
    """The owners a person can answer for: automatic policies (`policy:*`) are never offered."""
    return [o for o in owners if not o.startswith("policy:")]


def decision_form(owners: list[str]) -> type[RunInput]:
    """The Prefect form: the approver is chosen among the contract's human owners, not typed."""
    people = human_owners(owners)
    if not people:
        raise AdapterOpsError(f"The contract names no person among its owners ({', '.join(owners)}); add one to its "
                              "`owners`, or set `approval: auto` in the config.")
    return create_model("CorpusDecision", __base__=RunInput, __doc__="A contract owner's decision on a corpus version.",
                        approver=(Literal[tuple(people)], Field(description="Who decides (an owner of the contract).")),
                        decision=(Literal["approve", "reject"], Field(description="Approve for training, or reject.")),
                        note=(str, Field("", description="Why, for the decision log.")))


def version_tag(pipeline: str, version: int) -> str:
    """The tag of every flow run that waits on this corpus version (the CLI finds them by it)."""
    return f"corpus:{pipeline}:v{version}"


def decided(pipeline: str, digest: str) -> dict | None:
    """The version's approval if it is approved; None while pending; an error naming the decision otherwise.

    Read from the version's decision statement, not its tags (a shortcut only: training and release verify
    the signature themselves).
    """
    run = find_version(pipeline, digest=digest)
    statement = current_decision(run)
    if statement is None:
        return None
    record = {k: statement.get(k, "") for k in ("approver", "decision", "note", "time")} | {"digest": digest}
    if statement.get("decision") == "approved" and statement.get("digest") == digest:
        return record
    raise AdapterOpsError(f"Corpus version {run.data.tags.get('corpus.version', '?')} was {record['decision']} by "
                          f"{record['approver'] or '?'} at {record['time'] or '?'} ({record['note'] or 'no note'}); "
                          "nothing to train. Fix the data: the next run curates a new version.")


def _served() -> bool:
    """True under a Prefect server someone can open; the embedded one ends with this process."""
    return bool(get_current_settings().api.url)


def _deployed() -> bool:
    """True in a top-level run of a deployment: it can suspend (free its worker) and be resumed later."""
    from prefect.context import FlowRunContext

    run = FlowRunContext.get() and FlowRunContext.get().flow_run
    return bool(run and run.deployment_id and not run.parent_task_run_id)


def _tag_this_run(tag: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.get_id())
        if tag not in run.tags:
            client.update_flow_run(run.id, tags=[*run.tags, tag])


def waiting_runs(pipeline: str, version: int) -> list:
    """Flow runs paused or suspended on this corpus version's decision."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )

    only = FlowRunFilter(tags=FlowRunFilterTags(all_=[version_tag(pipeline, version)]),
                         state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PAUSED"])))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=only)


def resume_waiting_runs(pipeline: str, version: int, run_input: dict, other_than=None) -> list[str]:
    """Resume every run waiting on this version with the decision already recorded; the names of those resumed.

    Each resumed run reads the version's status, not the form: it goes on, or ends with the real reason.
    """
    from prefect.flow_runs import resume_flow_run

    if not _served():
        return []
    try:
        waiting = waiting_runs(pipeline, version)
    except Exception as error:   # the decision is recorded; an unreachable server must not hide that
        get_logger().warning("Could not look for flow runs waiting on corpus v%s (%s); resume them in the Prefect UI.",
                             version, error)
        return []
    resumed = []
    for run in waiting:
        if str(run.id) == str(other_than):
            continue
        try:
            resume_flow_run(run.id, run_input=run_input)
            resumed.append(run.name)
        except Exception as error:  # one run that cannot be resumed (timed out meanwhile) must not hide the others
            get_logger().warning("Could not resume flow run %s waiting on corpus v%s: %s", run.name, version, error)
    return resumed


def get_logger():
    try:
        return get_run_logger()
    except Exception:   # outside a run (the CLI)
        return logging.getLogger("adapterops")


def _ask(config: Config, form: type[RunInput], description: str, key: str):
    """Show the form and wait: suspended under a deployment (the worker's process ends), else paused in process."""
    timeout = max(1, round(config.approval_timeout_hours * 3600))
    form = form.with_initial_data(description=description)
    if _deployed():
        return suspend_flow_run(wait_for_input=form, timeout=timeout, key=key)
    return pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=FORM_POLL_SECONDS, key=key)


def _wait_for_owner(config: Config, corpus: CorpusRef, review: str) -> dict:
    """Ask the owners until one valid decision is recorded (at most MAX_TRIES forms) or the version is decided elsewhere."""
    pipeline, version = corpus.pipeline, corpus.version
    if not any(owner.form for owner in corpus_contract(corpus).owners_):   # no form answer could count
        raise AdapterOpsError(f"Contract {corpus.contract} accepts no decisions from the Prefect form (no owner has "
                              f"`form: true`); approve with `adapterops corpus approve {version} --name {pipeline} "
                              "--as NAME` (signed with your key) and run again.")
    form = decision_form(corpus.owners)
    _tag_this_run(version_tag(pipeline, version))
    heading = (f"## Corpus {md_text(pipeline)} v{version}\n\nDigest {md_code(corpus.digest)}. Owners who may decide: "
               f"{md_text(', '.join(human_owners(corpus.owners)))}. Or from a terminal: "
               f"{md_code(f'adapterops corpus approve {version} --name {pipeline} --as NAME --yes')}.\n\n")
    run = find_version(pipeline, digest=corpus.digest)
    mlflow_url = (f"{config.mlflow_ui_url.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
                  "?workflowType=machine_learning")
    problem, last_error = "", ""
    for attempt in range(1, MAX_TRIES + 1):
        key = f"decision-v{version}-{attempt}"
        emit_waiting(corpus, f"{config.prefect_ui_url.rstrip('/')}/runs/flow-run/{flow_run.get_id()}", mlflow_url,
                     human_owners(corpus.owners), key=f"{flow_run.get_id()}-{key}")
        try:
            answer = _ask(config, form, heading + problem + review, key=key)
        except FlowPauseTimeout:
            raise AdapterOpsError(f"No decision on corpus version {version} within {config.approval_timeout_hours:g} h; "
                                  f"it stays pending. Decide with `adapterops corpus approve {version} --name {pipeline} "
                                  "--as NAME` and run again.") from None
        if (record := decided(pipeline, corpus.digest)) is not None:   # by the CLI or another run's form
            return record | {"elsewhere": True}
        decision = "approved" if answer.decision == "approve" else "rejected"
        try:
            # the person in the form holds no key: the workspace key signs on their behalf (via prefect-form),
            # and the gates accept that only for owners the contract marks `form: true`
            record = record_decision(pipeline, corpus.digest, answer.approver, decision, answer.note,
                                     approval=config.approval, via=VIA_FORM, announce=False)
        except AdapterOpsError as error:
            if (record := decided(pipeline, corpus.digest)) is not None:   # decided elsewhere meanwhile
                return record | {"elsewhere": True}
            last_error = str(error)
            problem = f"> **Decision {attempt} of {MAX_TRIES} refused:** {md_text(str(error)[:1000])}\n\n"
            get_logger().warning("Decision on corpus v%s refused (%s); the form is shown again (%d/%d).",
                                 version, error, attempt, MAX_TRIES)
            continue
        _tag_this_run(f"{version_tag(pipeline, version)}:decided")
        resume_waiting_runs(pipeline, version, {"approver": answer.approver, "decision": answer.decision,
                                                "note": answer.note}, other_than=flow_run.get_id())
        return record
    raise AdapterOpsError(f"No valid decision on corpus version {version} after {MAX_TRIES} forms (last: {last_error}); "
                          f"it stays pending. Decide with `adapterops corpus approve {version} --name {pipeline} --as NAME`.")


def _this_run_tags() -> list[str]:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return list(context.flow_run.tags) if context and context.flow_run else []


def approve_version(config: Config, corpus: CorpusRef) -> dict:
    """Approve as policy:auto when configured; else wait for an owner's form under a server, or stop."""
    if (record := decided(corpus.pipeline, corpus.digest)) is not None:
        # a suspended run re-runs from the top when resumed: if it waited and its form did not decide, who did trains
        tag, tags = version_tag(corpus.pipeline, corpus.version), _this_run_tags()
        return record | {"elsewhere": True} if tag in tags and f"{tag}:decided" not in tags else record
    review = version_review(corpus.pipeline, find_version(corpus.pipeline, digest=corpus.digest),
                            config.mlflow_ui_url, config.prefect_ui_url, config.review_sample)
    publish_markdown("corpus-review", f"Corpus v{corpus.version} for review", review)
    if config.approval == "auto":
        record = record_decision(corpus.pipeline, corpus.digest, AUTO_APPROVER, "approved",
                                 "approved by the pipeline's automatic policy", approval=config.approval, announce=False)
    elif _served():
        get_logger().info("Corpus v%s awaits an owner's decision in the Prefect UI (owners: %s)",
                          corpus.version, ", ".join(human_owners(corpus.owners)))
        record = _wait_for_owner(config, corpus, review)
    else:
        raise AdapterOpsError(
            f"Corpus version {corpus.version} ({corpus.digest[:19]}) awaits approval by an owner of contract "
            f"{corpus.contract} ({', '.join(human_owners(corpus.owners))}). Review it with `adapterops corpus show "
            f"{corpus.version} --name {corpus.pipeline}`, approve with `adapterops corpus approve "
            f"{corpus.version} --name {corpus.pipeline} --as NAME`, then run again.")
    where = " (decided outside this run)" if record.get("elsewhere") else ""
    publish_markdown("approval", f"Corpus v{corpus.version} {record['decision']}{where}",
                     f"By {md_code(record['approver'])} at {record['time']}, digest {md_code(corpus.digest)}. "
                     f"{md_text(record['note'])}")
    if record["decision"] != "approved":
        raise AdapterOpsError(f"Corpus version {corpus.version} was rejected by {record['approver']}: "
                              f"{record['note'] or 'no note'}. Fix the data: the next run curates a new version.")
    return record


approve_flow = flow(name="approve")(approve_version)


def approve(config: Config, corpus: CorpusRef) -> dict:
    """The approval step: a sub-flow; in a deployed run, inline, so that waiting suspends the run and frees its worker.

    The result has "elsewhere" when the version was approved outside this run while it waited (the CLI, whose
    event starts the on-approval deployment, or another run's form, which trains it): this run need not train.
    """
    if _deployed():
        return approve_version(config, corpus)
    return approve_flow(config, corpus)
