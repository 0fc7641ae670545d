"""Owner approval: by CLI, by the Prefect form of a paused run, and every refusal of training."""

import json
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from adapterops.config import parse_config
from adapterops.errors import AdapterOpsError
from cli.main import app


@pytest.fixture(scope="module", autouse=True)
def owner_keys(tmp_path_factory):
    """dana.k holds a key listed in a copy of the contract (same name and version) and may decide in the form."""
    from tests.integrity.procs_approval import keyed_contract

    path = keyed_contract(tmp_path_factory.mktemp("contracts"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTEROPS_CONTRACTS", str(path.parent))
        yield path


SMALL = {"approval": "owner", "demo_records": 150, "train": {"max_steps": 2, "batch_size": 2},
         "release": {"model_name": "approval-tests"},
         "approval_timeout_hours": 0.05}


def curate_pending(name, approval="owner"):
    from flows.curate import curate

    config = parse_config(SMALL | {"name": name, "approval": approval})
    return config, curate(config)


def corpus_tags(corpus):
    from tasks.corpus.versions import find_version

    return find_version(corpus.pipeline, digest=corpus.digest).data.tags


def test_without_a_server_the_run_stops_and_names_the_waiting_version(prefect_harness, monkeypatch):
    import flows.approve as approve_module

    config, corpus = curate_pending("stops")
    monkeypatch.setattr(approve_module, "_served", lambda: False)
    with pytest.raises(AdapterOpsError, match=r"awaits approval by an owner .*adapterops corpus approve 1"):
        approve_module.approve(config, corpus)
    assert corpus_tags(corpus)["corpus.status"] == "pending"


def test_owner_resumes_the_paused_run_through_the_prefect_form(prefect_harness, monkeypatch):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.flow_runs import resume_flow_run

    import flows.approve as approve_module
    from tests.flows.background import start_in_background, wait_for_flow_runs

    monkeypatch.setattr(approve_module, "FORM_POLL_SECONDS", 1)
    config, corpus = curate_pending("form")
    worker, outcome = start_in_background(approve_module.approve, config, corpus)
    paused = wait_for_flow_runs(FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PAUSED"]))))
    assert paused, "the approve flow never paused for input"
    from prefect.input.actions import read_flow_run_input

    description = read_flow_run_input(paused[0].state.state_details.run_input_keyset["description"],
                                      flow_run_id=paused[0].id)
    assert "### Curation" in description and "[MLflow corpus run](http://127.0.0.1:5000/#/experiments/" in description
    assert "[Prefect curate run](http://127.0.0.1:4200/runs/flow-run/" in description
    assert "is the first version to be approved" in description and "**Added** (5 of" in description
    resume_flow_run(paused[0].id, run_input={"approver": "dana.k", "decision": "approve", "note": "reviewed diff"})
    worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["approver"] == "dana.k"
    tags = corpus_tags(corpus)
    assert tags["corpus.status"] == "approved" and tags["approval.note"] == "reviewed diff"


def test_no_decision_before_the_timeout_leaves_the_version_pending(prefect_harness, monkeypatch):
    import flows.approve as approve_module

    monkeypatch.setattr(approve_module, "FORM_POLL_SECONDS", 1)
    config, corpus = curate_pending("timeout")
    config = config.model_copy(update={"approval_timeout_hours": 2 / 3600})
    with pytest.raises(AdapterOpsError, match=r"No decision on corpus version 1 within .*stays pending.*corpus approve 1"):
        approve_module.approve(config, corpus)
    assert corpus_tags(corpus)["corpus.status"] == "pending"


def test_cli_approval_refusals_and_the_append_only_log(prefect_harness):
    from tasks.approve.approval import require_approved

    _, first = curate_pending("cli")
    runner = CliRunner()
    refused = runner.invoke(app, ["corpus", "approve", "1", "--name", "cli", "--as", "mallory", "--yes"])
    assert refused.exit_code != 0 and "not an owner" in str(refused.exception)
    with pytest.raises(AdapterOpsError, match="version 1 is pending"):
        require_approved("cli", first.digest)
    result = runner.invoke(app, ["corpus", "approve", "1", "--name", "cli", "--as", "dana.k", "--note", "ok", "--yes"])
    assert result.exit_code == 0, result.output
    require_approved("cli", first.digest)
    again = runner.invoke(app, ["corpus", "reject", "1", "--name", "cli", "--as", "dana.k", "--yes"])
    assert "already approved" in str(again.exception)
    log = [v for k, v in corpus_tags(first).items() if k.startswith("approval.log.")]
    assert len(log) == 1 and "dana.k approved" in log[0]
    with pytest.raises(AdapterOpsError, match="matches no corpus version"):
        require_approved("cli", "sha256:" + "0" * 64)


def test_rejected_version_is_refused_and_a_new_approval_supersedes(prefect_harness, monkeypatch):
    from tasks.approve.approval import record_decision, require_approved
    from tasks.corpus.versions import find_version

    config, first = curate_pending("supersede")
    record_decision("supersede", first.digest, "dana.k", "approved", "v1 fine")
    second_config = parse_config(SMALL | {"name": "supersede", "demo_records": 160})
    from flows.curate import curate

    second = curate(second_config)
    assert second.version == 2 and second.digest != first.digest
    manifest = json.loads((Path(second.path) / "manifest.json").read_text())
    assert manifest["parent"] == first.digest                # the version it was curated after
    record_decision("supersede", second.digest, "dana.k", "approved", "v2 fine")
    old = find_version("supersede", digest=first.digest).data.tags
    assert old["corpus.status"] == "superseded" and old["corpus.superseded_by"] == "2"
    with pytest.raises(AdapterOpsError, match="version 1 is superseded"):
        require_approved("supersede", first.digest)
    third = curate(parse_config(SMALL | {"name": "supersede", "demo_records": 170}))
    record_decision("supersede", third.digest, "dana.k", "rejected", "PII found")
    with pytest.raises(AdapterOpsError, match="version 3 is rejected"):
        require_approved("supersede", third.digest)


def test_approval_by_someone_removed_from_the_owners_is_refused(prefect_harness, owner_keys, tmp_path):
    """The contract file is edited after curation (dana.k removed): the version's contract changed, so its approval
    no longer counts; refused by name with both digests (tests/integrity/test_decisions_from_files.py)."""
    from tasks.approve.approval import record_decision, require_approved

    _, corpus = curate_pending("exowner")
    record_decision("exowner", corpus.digest, "dana.k", "approved")
    from tests.integrity.procs_approval import keyed_contract

    original = owner_keys.read_bytes()
    edited = keyed_contract(tmp_path, {"sam.p": {}, "policy:auto": {}})     # dana.k no longer an owner
    owner_keys.write_bytes(edited.read_bytes())
    try:
        with pytest.raises(AdapterOpsError, match="changed after corpus version .* was curated"):
            require_approved("exowner", corpus.digest)
    finally:
        owner_keys.write_bytes(original)


def test_diff_shows_added_removed_changed_and_sources():
    import pandas as pd

    from tasks.corpus.versions import diff_records

    cols = ["id", "source", "timestamp", "prompt", "completion"]
    old = pd.DataFrame([["a", "email", "t", "p", "c"], ["b", "chat", "t", "p", "c"]], columns=cols)
    new = pd.DataFrame([["a", "email", "t", "p2", "c"], ["c", "chat", "t", "p", "c"], ["d", "chat", "t", "p", "c"]],
                       columns=cols)
    diff = diff_records(old, new)
    assert (diff["added"], diff["removed"], diff["changed"]) == (["c", "d"], ["b"], ["a"])
    assert diff["sources"] == {"chat": {"old": 1, "new": 2}, "email": {"old": 1, "new": 1}}


@pytest.mark.slow   # trains an adapter through the event flow
def test_the_approval_event_flow_trains_the_approved_version(prefect_harness):
    from flows.approved import train_approved
    from tasks.approve.approval import record_decision

    config, corpus = curate_pending("event")
    with pytest.raises(AdapterOpsError, match="pending"):
        train_approved(config, corpus.digest)
    record_decision("event", corpus.digest, "dana.k", "approved")
    result = train_approved(config, corpus.digest)
    version = mlflow.MlflowClient().get_model_version(config.release.model_name, result["adapter"].version)
    assert version.tags["corpus.digest"] == corpus.digest and version.tags["approval.approver"] == "dana.k"
    assert result["release"].version == result["adapter"].version
    again = train_approved(config, corpus.digest)          # a repeated event trains nothing
    assert again["reused"].version == result["adapter"].version and "adapter" not in again


def test_approval_emits_the_event_the_on_approval_deployment_triggers_on(prefect_harness, monkeypatch):
    import fnmatch
    from pathlib import Path

    import prefect.events
    import yaml
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from tasks.approve.approval import record_decision

    emitted = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kwargs: emitted.append(kwargs))
    _, corpus = curate_pending("emits")
    record_decision("emits", corpus.digest, "dana.k", "approved")
    assert len(emitted) == 1 and emitted[0]["payload"]["digest"] == corpus.digest

    declared = yaml.safe_load((Path(__file__).parents[2] / "deployments" / "prefect.yaml").read_text())
    deployment = next(d for d in declared["deployments"] if d["name"] == "on-approval")
    assert deployment["entrypoint"] == "flows/approved.py:train_approved"
    trigger = DeploymentEventTrigger.model_validate(deployment["triggers"][0])
    assert emitted[0]["event"] in trigger.expect
    pattern = deployment["triggers"][0]["match"]["prefect.resource.id"]
    assert fnmatch.fnmatch(emitted[0]["resource"]["prefect.resource.id"], pattern)
    assert trigger.parameters == {"digest": "{{ event.payload.digest }}"}

    from flows.approve import approve

    config, in_flow = curate_pending("emits-not", approval="auto")      # policy:auto decides only auto versions
    approve(config, in_flow)   # this run trains the version itself
    assert len(emitted) == 1


def test_a_decision_without_a_terminal_asks_for_yes_in_one_line():
    result = CliRunner().invoke(app, ["corpus", "approve", "1", "--name", "noterm", "--as", "dana.k"])
    assert result.exit_code != 0 and isinstance(result.exception, AdapterOpsError)
    assert "add --yes" in str(result.exception) and "\n" not in str(result.exception)


def test_the_form_offers_the_contracts_people_never_a_policy():
    from flows.approve import decision_form

    schema = decision_form(["dana.k", "policy:auto", "sam.p"]).model_json_schema()
    assert schema["properties"]["approver"]["enum"] == ["dana.k", "sam.p"]
    assert schema["properties"]["decision"]["enum"] == ["approve", "reject"]
    with pytest.raises(AdapterOpsError, match="names no person among its owners"):
        decision_form(["policy:auto"])


def waiting_on(name, count=1):
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )

    from flows.approve import version_tag
    from tests.flows.background import wait_for_flow_runs

    runs = wait_for_flow_runs(FlowRunFilter(tags=FlowRunFilterTags(all_=[version_tag(name, 1)]),
                                            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PAUSED"]))),
                              until=lambda found: len(found) >= count)
    assert len(runs) >= count, f"{count} run(s) should wait on {name} v1, found {len(runs)}"
    return runs


def test_a_mistyped_or_refused_decision_shows_the_form_again(prefect_harness, monkeypatch):
    from prefect.flow_runs import resume_flow_run

    import flows.approve as approve_module
    from tests.flows.background import start_in_background

    monkeypatch.setattr(approve_module, "FORM_POLL_SECONDS", 1)
    refusals = []

    def refuse_once(*args, **kwargs):
        if not refusals:
            refusals.append(args)
            raise AdapterOpsError("the decision could not be recorded; try again")
        return record_decision(*args, **kwargs)

    from tasks.approve.approval import record_decision

    monkeypatch.setattr(approve_module, "record_decision", refuse_once)
    config, corpus = curate_pending("retry")
    worker, outcome = start_in_background(approve_module.approve, config, corpus)
    paused = waiting_on("retry")[0]
    with pytest.raises(RuntimeError, match="Cannot resume"):   # not one of the owners: the server refuses it
        resume_flow_run(paused.id, run_input={"approver": "Dana K", "decision": "approve"})
    resume_flow_run(paused.id, run_input={"approver": "dana.k", "decision": "approve", "note": "first"})
    import time

    deadline = time.monotonic() + 60
    while not refusals and time.monotonic() < deadline:
        time.sleep(0.5)
    again = waiting_on("retry")[0]          # refused: the same run asks again
    assert again.id == paused.id and "error" not in outcome
    resume_flow_run(again.id, run_input={"approver": "dana.k", "decision": "approve", "note": "second"})
    worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert corpus_tags(corpus)["approval.note"] == "second"


def test_a_cli_decision_resumes_the_waiting_run_which_leaves_training_to_the_event(prefect_harness, monkeypatch):
    import prefect.events

    import flows.approve as approve_module
    from tests.flows.background import start_in_background

    monkeypatch.setattr(approve_module, "FORM_POLL_SECONDS", 1)
    emitted = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kwargs: emitted.append(kwargs))
    config, corpus = curate_pending("from-cli")
    worker, outcome = start_in_background(approve_module.approve, config, corpus)
    waiting_on("from-cli")
    result = CliRunner().invoke(app, ["corpus", "approve", "1", "--name", "from-cli", "--as", "dana.k", "--yes"])
    assert result.exit_code == 0, result.output
    assert "Resumed the flow runs waiting on v1" in result.output
    worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["elsewhere"] and outcome["result"]["approver"] == "dana.k"
    approved = [e for e in emitted if e["event"] == "adapterops.corpus.approved"]
    assert len(approved) == 1      # the on-approval deployment trains it; the resumed run does not


def test_a_rejection_elsewhere_ends_the_waiting_run_with_the_real_reason(prefect_harness, monkeypatch):
    import flows.approve as approve_module
    from tests.flows.background import start_in_background

    monkeypatch.setattr(approve_module, "FORM_POLL_SECONDS", 1)
    config, corpus = curate_pending("rejected-cli")
    worker, outcome = start_in_background(approve_module.approve, config, corpus)
    waiting_on("rejected-cli")
    result = CliRunner().invoke(app, ["corpus", "reject", "1", "--name", "rejected-cli", "--as", "dana.k",
                                      "--note", "PII in chat", "--yes"])
    assert result.exit_code == 0, result.output
    worker.join(timeout=60)
    assert isinstance(outcome.get("error"), AdapterOpsError)
    assert "rejected by dana.k" in str(outcome["error"]) and "PII in chat" in str(outcome["error"])


def test_one_runs_form_decides_for_every_run_waiting_on_the_version(prefect_harness, monkeypatch):
    from prefect.flow_runs import resume_flow_run

    import flows.approve as approve_module
    from tests.flows.background import start_in_background

    monkeypatch.setattr(approve_module, "FORM_POLL_SECONDS", 1)
    config, corpus = curate_pending("two-runs")
    first, first_outcome = start_in_background(approve_module.approve, config, corpus)
    second, second_outcome = start_in_background(approve_module.approve, config, corpus)
    runs = waiting_on("two-runs", count=2)
    resume_flow_run(runs[0].id, run_input={"approver": "dana.k", "decision": "approve", "note": "one form"})
    first.join(timeout=60)
    second.join(timeout=60)
    results = [first_outcome.get("result"), second_outcome.get("result")]
    assert all(results), (first_outcome, second_outcome)
    assert sorted(bool(r.get("elsewhere")) for r in results) == [False, True]   # one trains, the other does not


def test_corpus_show_prints_the_review(prefect_harness):
    _, corpus = curate_pending("show")
    result = CliRunner().invoke(app, ["corpus", "show", "1", "--name", "show", "--sample", "2"])
    assert result.exit_code == 0, result.output
    assert "Curation" in result.output and "MLflow corpus run" in result.output and "Added (2 of" in result.output
