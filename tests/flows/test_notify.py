"""The declared automations match the events AdapterOps emits, and their messages render from those events."""

import fnmatch
from types import SimpleNamespace
from uuid import uuid4

import jinja2
import prefect.events
import pytest

from adapterops.refs import ReleaseDecision
from flows.notify import declared_automations, emit_release, emit_waiting
from tests.refs import fake_corpus

CORPUS = fake_corpus(pipeline="tickets", version=3, digest="sha256:abc")


@pytest.fixture()
def emitted(monkeypatch):
    events = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kwargs: events.append(kwargs))
    return events


def render(template: str, event: dict) -> str:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return environment.from_string(template).render(event=SimpleNamespace(payload=event["payload"]))


def automation_for(event: dict):
    matching = [a for a in declared_automations(uuid4()) if event["event"] in a.trigger.expect
                and any(fnmatch.fnmatch(event["resource"]["prefect.resource.id"], pattern)
                        for pattern in a.trigger.match["prefect.resource.id"])]
    assert len(matching) == 1, f"{event['event']} should start exactly one automation"
    return matching[0]


def test_a_waiting_version_is_announced_with_its_links_and_the_command(emitted):
    emit_waiting(CORPUS, "http://prefect:4200/runs/flow-run/r", "http://mlflow:5000/#/x", ["dana.k"], key="r-1")
    emit_waiting(CORPUS, "http://prefect:4200/runs/flow-run/r", "http://mlflow:5000/#/x", ["dana.k"], key="r-1")
    assert emitted[0]["id"] == emitted[1]["id"]          # a replayed form announces nothing new
    action = automation_for(emitted[0]).actions[0]
    body = render(action.body, emitted[0])
    assert "http://prefect:4200/runs/flow-run/r" in body and "http://mlflow:5000/#/x" in body
    assert "adapterops corpus approve 3 --name tickets --as NAME --yes" in body and "dana.k" in body
    assert render(action.subject, emitted[0]) == "Corpus tickets v3 waits for an owner"


@pytest.mark.parametrize("promoted,verdict", [(True, "promoted to production"), (False, "held at candidate")])
def test_a_promotion_or_a_hold_is_announced_with_its_reason(emitted, promoted, verdict):
    decision = ReleaseDecision(model_name="m", version="4", promoted=promoted, reason="loss 0.9 vs 1.2",
                               previous_production=None, time="2026-12-02T00:00:00+00:00", checks=[], notes=[],
                               staging=None)
    emit_release(decision, CORPUS, "http://mlflow:5000")
    action = automation_for(emitted[0]).actions[0]
    assert render(action.subject, emitted[0]) == f"m v4 {verdict}"
    assert "Why: loss 0.9 vs 1.2" in render(action.body, emitted[0])


def test_failed_and_crashed_runs_are_announced():
    failed = next(a for a in declared_automations(uuid4()) if a.name == "adapterops-run-failed")
    assert failed.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert "flow_run|ui_url" in failed.actions[0].body
