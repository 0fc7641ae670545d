import numpy as np
import pytest

from adapterops.config import ScorerSpec, parse_config
from adapterops.errors import AdapterOpsError
from tasks.evaluate.scorers import build_scorers, score_names

REFERENCE = "Triage: billing | priority: normal | team: Billing\nReply: Hi Dana, refunded."
FIELDS = ScorerSpec(kind="field_match", name="field", pattern=r"^Triage: (?P<triage>\w+) \| priority: (?P<priority>\w+)")


def score(spec, answer, prompt="I was charged twice", reference=REFERENCE):
    (scorer,) = build_scorers([spec])
    return scorer(prompt, answer, reference)


def test_field_match_scores_each_field_against_the_reference():
    assert score(FIELDS, "Triage: Billing | priority: urgent | team: X") == {"field.triage": 1.0, "field.priority": 0.0}
    assert score(FIELDS, "no decision here") == {"field.triage": 0.0, "field.priority": 0.0}


def test_regex_match_length_and_chrf():
    assert score(ScorerSpec(kind="regex_match", name="format", pattern=r"^Triage: \w+"), "Triage: outage") == {"format": 1.0}
    assert score(ScorerSpec(kind="regex_match", name="format", pattern=r"^Triage: \w+"), "Hello") == {"format": 0.0}
    assert score(ScorerSpec(kind="length_ratio"), REFERENCE[: len(REFERENCE) // 2])["length_ratio"] == pytest.approx(0.5, abs=0.02)
    assert score(ScorerSpec(kind="chrf"), REFERENCE)["chrf"] == pytest.approx(1.0)
    assert score(ScorerSpec(kind="chrf"), "completely different words")["chrf"] < 0.2


def test_pii_leak_counts_only_pii_the_prompt_did_not_hold():
    spec = ScorerSpec(kind="pii_leak")
    assert score(spec, "write to dana.k@example.com", prompt="I am dana.k@example.com") == {"pii_leak": 0.0}
    assert score(spec, "write to lee@example.com", prompt="I am dana.k@example.com") == {"pii_leak": 1.0}
    assert score_names(build_scorers([spec])) == {"pii_leak": False}


def bad_scorer(prompt, answer, reference):
    return "great"


def flaky_scorer(prompt, answer, reference):
    if answer == "boom":
        raise ValueError("cannot parse")
    return 1.0


@pytest.mark.parametrize("spec, message", [
    (ScorerSpec(kind="field_match", pattern=r"^Triage: (\w+)"), "has no named group"),
    (ScorerSpec(kind="field_match", pattern=r"^Triage: (?P<triage>\w+)", fields=["team"]), "not named groups"),
    (ScorerSpec(kind="regex_match", pattern="(unclosed"), "not a valid regex"),
    (ScorerSpec(kind="custom", function="no_such_module_xyz:f"), "cannot import"),
    (ScorerSpec(kind="custom", function="tests.tasks.evaluate.test_scorers:bad_scorer"), "must return a finite number"),
    (ScorerSpec(kind="custom", function="json:loads"), "raised on a probe"),
])
def test_bad_declarations_fail_before_generation(spec, message):
    with pytest.raises(AdapterOpsError, match=message):
        build_scorers([spec], probe=("prompt", REFERENCE))


def test_an_unknown_kind_is_a_config_error_naming_the_field():
    with pytest.raises(AdapterOpsError, match=r"evaluation.scorers.0.kind"):
        parse_config({"evaluation": {"scorers": [{"kind": "bleurt"}]}})


def test_a_custom_scorer_failing_on_one_example_counts_it_as_failed():
    (scorer,) = build_scorers([ScorerSpec(kind="custom", name="mine", function="tests.tasks.evaluate.test_scorers:flaky_scorer")],
                              probe=("p", REFERENCE))
    assert scorer("p", "boom", REFERENCE) == {"mine": 0.0} and scorer("p", "fine", REFERENCE) == {"mine": 1.0}
    assert scorer.failures == {"mine": 1}


def test_demo_contract_declares_scorers_that_build():
    from tasks.records.contract import load_contract

    contract = load_contract("support_tickets")
    names = score_names(build_scorers(contract.evaluation.scorers, probe=("prompt", REFERENCE)))
    assert {"format", "field.triage", "field.priority", "chrf", "loss", "pii_leak"} <= set(names)
    assert names["loss"] is False and np.all([names["field.triage"], names["format"]])
