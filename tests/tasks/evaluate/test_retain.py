"""The retain set: loaded and pinned at the moment of use, scored for base and candidate, KL from the base, and
gated only by rules that name retain.*."""

import hashlib
import json

import numpy as np
import pytest

from adapterops.config import EvaluationConfig, GateRule, ReleaseConfig, Waiver
from adapterops.errors import AdapterOpsError
from tasks.evaluate.retain import load_retain_set, retain_summary, text_kl
from tasks.evaluate.run import summarise
from tasks.release.gate import decide
from tasks.records.contract import RetainSpec

CFG = EvaluationConfig(resamples=1000)


def write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_pinned_retain_set_that_changed_is_refused_at_the_moment_of_use(tmp_path):
    path = tmp_path / "retain.jsonl"
    pin = write(path, [{"prompt": "Repeat: lamp", "completion": "lamp"}])
    records, digest = load_retain_set(str(path), pin)
    assert digest == pin and records["prompt"].tolist() == ["Repeat: lamp"]
    write(path, [{"prompt": "Repeat: lamp", "completion": "LAMP"}])
    with pytest.raises(AdapterOpsError, match="not the one the contract pins"):
        load_retain_set(str(path), pin)


def test_a_retain_line_without_prompt_names_its_line_and_a_missing_file_its_path(tmp_path):
    path = tmp_path / "retain.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{"question": "c"}\n', encoding="utf-8")
    with pytest.raises(AdapterOpsError, match="Line 2 of the retain set"):
        load_retain_set(str(path), None)
    with pytest.raises(AdapterOpsError, match="is not a file"):
        load_retain_set(str(tmp_path / "missing.jsonl"), None)


DEMO_RETAIN = RetainSpec(source="demo:retain", max_new_tokens=24,
                         digest="sha256:380f69fd8d559fe9020bed763c15f1c500b45ee3e5fb13505cc1424d335bda71")  # docs/evaluation.md


def test_the_demo_retain_set_matches_the_digest_the_docs_pin():
    spec = DEMO_RETAIN
    records, digest = load_retain_set(spec.source, spec.digest)
    assert digest == spec.digest and len(records) == 120
    assert "support" not in set(records["kind"])      # outside the domain the adapter is meant to change


def test_retain_scorers_must_judge_text():
    with pytest.raises(ValueError, match="retain scorers judge text answers"):
        RetainSpec(source="x.jsonl", scorers=[{"kind": "loss"}])


def test_kl_from_the_base_is_zero_for_a_fresh_adapter_and_grows_when_its_weights_move(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")).eval()
    prompt = tokenizer("### Ticket\nRepeat: lamp river\n### Response\n")["input_ids"]
    texts = [(prompt + tokenizer("lamp river", add_special_tokens=False)["input_ids"], len(prompt))]
    assert text_kl(model, texts, "default") == pytest.approx([0.0], abs=1e-6)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.5)
    moved = text_kl(model, texts, "default")[0]
    assert moved > 0.01
    ids, start = texts[0]
    with torch.no_grad():
        adapted = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
        with model.disable_adapter():
            base = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
    per_position = (base.exp() * (base - adapted)).sum(dim=-1)
    assert moved == pytest.approx(float(per_position[start - 1:-1].mean()), rel=1e-4)   # the answer's tokens only
    assert moved != pytest.approx(float(per_position.mean()), rel=1e-3)


def evaluation_with_retain(candidate_chrf, candidate_agree, candidate_kl, n=40):
    workload = {"format": np.ones(n)}
    summary = summarise({"base": {"format": np.zeros(n)}, "candidate": workload}, {"format": True}, {}, CFG)
    retain = {"base": {"retain.chrf": np.full(n, 0.9), "retain.agreement": np.ones(n), "retain.kl": np.zeros(n)},
              "candidate": {"retain.chrf": np.full(n, candidate_chrf), "retain.agreement": np.full(n, candidate_agree),
                            "retain.kl": np.full(n, candidate_kl)}}
    directions = {"retain.chrf": True, "retain.agreement": True, "retain.kl": False}
    summary["retain"] = retain_summary(retain, directions, CFG, "demo:retain", "sha256:x")
    return summary


def test_the_default_gate_holds_a_forgetful_adapter_and_names_each_retain_score():
    rules = ReleaseConfig().gate
    kept = decide(rules, evaluation_with_retain(0.88, 0.9, 0.05))
    assert kept.promote, kept.reason()
    forgot = decide(rules, evaluation_with_retain(0.3, 0.1, 2.0))
    assert not forgot.promote
    failed = {c.score for c in forgot.failed}
    assert failed == {"retain.chrf", "retain.agreement", "retain.kl"}, forgot.reason()
    assert "retain.kl: mean KL divergence from the base 2.0000 needs <= " in forgot.reason()
    assert all(c.scope == "retain" for c in forgot.checks if c.score.startswith("retain."))


def test_a_star_rule_is_about_the_workload_and_retain_rules_take_waivers():
    summary = evaluation_with_retain(0.3, 0.1, 2.0)
    star = decide([GateRule(score="*", max_regression_vs_base=0.0)], summary)
    assert star.promote and {c.score for c in star.checks} == {"format"}
    waived = decide([GateRule(score="retain.chrf", max_regression_vs_base=0.05)], summary,
                    [Waiver(score="retain.chrf", reason="the retain prompts now answer in house style")])
    assert waived.promote and "waived by the owner: retain.chrf" in waived.reason()


def test_max_kl_only_bounds_retain_kl():
    with pytest.raises(ValueError, match="must be retain.kl"):
        GateRule(score="loss", max_kl=0.5)


def test_an_adapter_trained_with_a_destructive_learning_rate_forgets_and_the_default_gate_holds_it(tiny_model_dir):
    """Real models: the built-in pretrained base, a fresh LoRA (the base's own behaviour) and one trained on support
    tickets at 30x the default learning rate, both evaluated on the demo retain set."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapterops.config import LoraConfig, TrainConfig
    from adapterops.demo_data import generate_records
    from tasks.train.recipe import train_lora, wrap_with_lora
    from tasks.train.sft_data import prepare_examples

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = wrap_with_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(), seed=1)
    model.add_adapter("fresh", model.peft_config["default"])
    train = TrainConfig(max_steps=40, batch_size=8, learning_rate=0.1, warmup_steps=0, checkpoint_every=0)
    examples, _ = prepare_examples(generate_records(160, 3), tokenizer, train)
    train_lora(model, tokenizer, examples, train)
    model.eval()
    spec = DEMO_RETAIN
    from tasks.evaluate.retain import evaluate_retain

    evaluation = EvaluationConfig(resamples=1000, max_new_tokens=24)
    kept, _, _, _ = evaluate_retain(model, tokenizer, spec, {"base": None, "candidate": "fresh"}, evaluation, train)
    forgot, _, answers, _ = evaluate_retain(model, tokenizer, spec, {"base": None, "candidate": "default"}, evaluation, train)
    assert kept["means"]["candidate"]["retain.agreement"] == 1.0 and kept["means"]["candidate"]["retain.kl"] < 1e-4
    assert forgot["means"]["candidate"]["retain.kl"] > 0.5
    assert forgot["means"]["candidate"]["retain.chrf"] < forgot["means"]["base"]["retain.chrf"]
    assert isinstance(model, PeftModel)

    def gate(retain):
        workload = summarise({"base": {"format": np.zeros(10)}, "candidate": {"format": np.ones(10)}}, {"format": True}, {}, CFG)
        return decide(ReleaseConfig().gate, workload | {"retain": retain})

    assert gate(kept).promote, gate(kept).reason()
    held = gate(forgot)
    assert not held.promote and {c.score for c in held.failed} >= {"retain.kl"}, held.reason()


def test_retain_scores_reach_the_metrics_the_score_table_and_the_gate_table():
    from adapterops.refs import ReleaseDecision
    from tasks.evaluate.report import gate_markdown, score_rows
    from tasks.evaluate.run import summary_metrics
    from tests.refs import fake_evaluation

    summary = evaluation_with_retain(0.3, 0.1, 2.0)
    metrics = summary_metrics(summary)
    assert metrics["eval.candidate.retain.kl"] == pytest.approx(2.0) and metrics["eval.base.retain.agreement"] == 1.0
    assert metrics["eval.vs_base.retain.chrf.mean"] == pytest.approx(-0.6)
    rows = [r["score"] for r in score_rows(fake_evaluation(summary=summary))]
    assert rows == ["format", "retain.chrf", "retain.agreement", "retain.kl"]
    decision = decide(ReleaseConfig().gate, summary).as_dict()
    text = gate_markdown(ReleaseDecision(model_name="m", version="1", promoted=False, reason=decision["reason"],
                                         previous_production=None, time="2026-12-04T00:00:00Z",
                                         checks=decision["checks"], notes=decision["notes"], staging=None))
    assert "| **FAIL** | retain.kl | retain | base | kl +2.0000 | <= +0.5000 |" in text
