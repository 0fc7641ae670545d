"""The staging smoke suite's verdict (pure) and a real staging run against `adapterops serve` in a subprocess."""

import os
import re

import mlflow
import pytest

from adapterops.config import ScorerSpec, ServeConfig
from tasks.release.staging import (SmokeAnswer, format_patterns, judge_smoke, local_base_path, percentile, smoke_cases,
                                   smoke_markdown)
from tests.refs import fake_adapter, fake_staging

SETTINGS = ServeConfig(smoke_format_min=0.5, smoke_p95_seconds=2.0)
FORMAT = format_patterns([ScorerSpec(kind="regex_match", name="format", pattern=r"^Triage: \w+"),
                          ScorerSpec(kind="chrf")])


def answers(texts, expected=None, seconds=0.1, status=200):
    expected = expected or texts
    return [SmokeAnswer(f"p{i}", e, status, t, seconds) for i, (t, e) in enumerate(zip(texts, expected))]


def test_a_clean_run_passes():
    result = judge_smoke(answers(["Triage: billing", "Triage: bug"]), FORMAT, SETTINGS)
    assert result["passed"] and result["reasons"] == [] and result["format_share"] == 1.0


@pytest.mark.parametrize("run,reason", [
    (answers(["Triage: billing", ""]), "1 of 2 answers were empty"),
    (answers(["hello", "hi", "Triage: x"]), "format compliance 0.33 < 0.50"),
    (answers(["Triage: billing", "Triage: bug"], ["Triage: billing", "Triage: other"]), "1 of 2 answers differ"),
    (answers(["Triage: a"] * 20, seconds=2.5), "p95 latency 2.50 s > 2 s"),
    (answers(["Triage: a"], status=503), "1 of 1 requests failed (first: HTTP 503"),
    ([], "no smoke prompts"),
])
def test_each_failed_check_is_named(run, reason):
    result = judge_smoke(run, FORMAT, SETTINGS)
    assert not result["passed"] and any(r.startswith(reason) for r in result["reasons"]), result["reasons"]


def test_with_no_format_scorer_the_format_check_is_skipped_not_reported_as_met():
    result = judge_smoke(answers(["anything", "at all"]), format_patterns([ScorerSpec(kind="chrf")]), SETTINGS)
    assert result["passed"] and result["format_share"] is None and not result["format_checked"]
    assert result["skipped"] and result["skipped"][0].startswith("format: the contract declares no regex_match scorer")
    staged = fake_staging(**result, version="2")
    text = smoke_markdown(staged)
    assert "| format compliance | skipped (no regex_match scorer declared) |" in text and "## Skipped" in text
    assert "100%" not in text and "1.00" not in text


def test_p95_and_cases_and_the_report_escapes_record_text():
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0 and percentile([3.0], 95) == 3.0
    assert smoke_cases([("a", "b"), ("c", "d"), ("e", "f")], 2) == [("a", "b"), ("c", "d")]
    result = judge_smoke(answers(["x|<b>"], ["y"]), [], SETTINGS)
    text = smoke_markdown(fake_staging(**result | {"reasons": ["prompt 'a|<script>'"]}, version="3"))
    assert "<script>" not in text and "FAILED" in text


def test_staging_serves_the_candidate_over_http_and_a_mismatch_fails_it_leaving_production(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.model.generate import generate
    from tasks.model.prompts import prompt_token_ids
    from tasks.release.staging import stage_candidate
    from tasks.serve.follower import registered_adapter
    from tests.serve.adapters import TEMPLATE, register_adapter

    client = mlflow.MlflowClient()
    production = register_adapter("svc-staging", 41, tiny_model_dir, "production")
    candidate = register_adapter("svc-staging", 42, tiny_model_dir)
    prompts = ["I was charged twice", "Where is my refund?", "The app crashes on login"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)   # the offline answers, generated in one batch
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                      registered_adapter(client, "svc-staging", candidate).adapter_dir)
    offline = generate(model, tokenizer, [prompt_token_ids(tokenizer, p, TEMPLATE) for p in prompts], 8, adapter="default")
    cases = [(p, a.text) for p, a in zip(prompts, offline)]
    cases[2] = (cases[2][0], cases[2][1] + " (tampered)")

    result = stage_candidate(ServeConfig(smoke_prompts=3, smoke_format_min=0.0),
                             fake_adapter(model_name="svc-staging", version=candidate), cases, [], 8, tmp_path)
    assert result.requests == 3 and result.failed == 0 and result.differ == 1, result
    assert not result.passed and any("differ from the offline" in r for r in result.reasons)
    aliases = {k: str(v) for k, v in client.get_registered_model("svc-staging").aliases.items()}
    assert aliases == {"production": production, "staging": candidate}
    tags = client.get_model_version("svc-staging", candidate).tags
    assert tags["staging.decision"] == "failed" and "differ" in tags["staging.reasons"]
    with pytest.raises(ProcessLookupError):   # the server it started is gone
        os.kill(result.server_pid, 0)


CONVERSATION = [{"role": "system", "content": "House policy: refunds need a manager."},
                {"role": "user", "content": "My parcel is lost"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"id": "A"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": '{"status": "lost"}'},
                {"role": "user", "content": "And now?"}]


def test_first_difference_names_the_token_on_each_side():
    from tasks.release.staging import first_difference

    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 9, 3], [1, 2, 3], lambda ids: f"t{ids[0]}") == \
        "token 1: server 9 't9', training 2 't2' (3 vs 3 tokens)"
    assert first_difference([1, 2], [1, 2, 3]).startswith("token 2: server (end), training 3")
    result = judge_smoke(answers(["Triage: a"]), [], SETTINGS, parity=[None, "token 4: server 7, training 8"])
    assert not result["passed"] and result["parity_mismatches"] == 1
    assert any(r.startswith("template parity: 1 of 2 conversations") and "token 4" in r for r in result["reasons"])


def test_the_training_renderer_equals_what_the_server_renders(tiny_model_dir):
    from transformers import AutoTokenizer

    from tasks.model.prompts import conversation_token_ids
    from tasks.release.staging import training_renderer
    from tests.serve.adapters import TEMPLATE, register_adapter

    version = register_adapter("svc-parity", 3, tiny_model_dir)
    render = training_renderer(fake_adapter(model_name="svc-parity", version=version))
    served = AutoTokenizer.from_pretrained(tiny_model_dir)   # what the server's /tokenize renders with
    for messages in (CONVERSATION, CONVERSATION[:2], [{"role": "user", "content": "hi"}]):
        assert render(messages, None) == conversation_token_ids(served, messages, None, TEMPLATE)


def test_a_planted_template_mismatch_holds_the_release_naming_the_first_differing_token(tiny_model_dir, tmp_path):
    import json

    from transformers import AutoTokenizer

    from adapterops.tiny_model import CHAT_TEMPLATE
    from tasks.model.prompts import conversation_token_ids
    from tasks.release.staging import stage_candidate
    from tests.serve.adapters import TEMPLATE, register_adapter

    version = register_adapter("svc-parity-planted", 5, tiny_model_dir)
    trained = AutoTokenizer.from_pretrained(tiny_model_dir)
    trained.chat_template = CHAT_TEMPLATE.replace("### System", "### Policy")   # training rendered otherwise
    planted = lambda messages, tools: conversation_token_ids(trained, messages, tools, TEMPLATE)   # noqa: E731
    planted.decode = trained.decode
    cases = [("And now?", "x", json.dumps(CONVERSATION), ""), ("hi", "y", json.dumps([{"role": "user", "content": "hi"}]), "")]
    result = stage_candidate(ServeConfig(smoke_prompts=2, smoke_format_min=0.0),
                             fake_adapter(model_name="svc-parity-planted", version=version), cases, [], 4, tmp_path,
                             renderer=planted)
    assert result.parity_checked == 2 and result.parity_mismatches == 1 and not result.passed
    reason = next(r for r in result.reasons if r.startswith("template parity"))
    assert "1 of 2 conversations" in reason and re.search(r"token \d+: server \d+ .*, training \d+ ", reason), reason
    assert mlflow.MlflowClient().get_model_version("svc-parity-planted", version).tags["staging.parity"] == "1/2"


def test_an_adapter_of_a_local_base_is_staged_from_that_folder_on_the_machine_that_trained_it(tmp_path):
    """The registry records a local base by name and revision only; staging names the folder the adapter ref holds."""
    local = {"serving.base_name": "my-base", "serving.base_revision": "sha256:1", "serving.base_source": "local"}
    adapter = fake_adapter(base_path=str(tmp_path))
    assert local_base_path(adapter, local) == str(tmp_path)
    assert local_base_path(fake_adapter(base_path=str(tmp_path / "elsewhere")), local) is None   # another machine
    assert local_base_path(adapter, local | {"serving.base_source": "builtin"}) is None
    assert local_base_path(adapter, local | {"serving.base_source": "hub"}) is None
