"""Evaluation speed on 2 CPU cores: the demo's evaluation (base + candidate + production × the eval set),
and batched generation against a per-example `model.generate` loop on the same prompts.

Run with: .venv/bin/python benchmarks/evaluate.py [--steps 150] [--workspace DIR]

It builds the tiny model, trains two adapters on the demo corpus (the candidate and a "production"
one with another seed), then times, in this process:
- the evaluation core as the pipeline runs it: generation by the three models, per-example loss,
  the contract's scorers and the paired bootstrap (MLflow logging excluded); target <= 60 s;
- batched generation (left-padded, KV cache, one call per batch) against a loop of one
  `model.generate` per prompt, both greedy with the same max_new_tokens; target >= 3x tokens/s,
  and the answers must be identical.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="Training steps per adapter (default: the demo's).")
    parser.add_argument("--workspace", default=None, help="Folder for the model and adapters (default: a temp dir).")
    parser.add_argument("--loop-prompts", type=int, default=40, help="Prompts timed in the per-example loop.")
    args = parser.parse_args()

    import json

    import pandas as pd
    import torch
    from peft import PeftModel

    from adapterops.config import parse_config
    from adapterops.demo_data import eval_lines, generate_records
    from adapterops.refs import BaseModelRef
    from adapterops.tiny_model import ensure_tiny_model, weights_revision
    from cli.commands.run import DEMO_SETTINGS
    from tasks.evaluate.run import answer_and_score, slice_labels, summarise
    from tasks.evaluate.scorers import build_scorers, score_names
    from tasks.model.base_model import load_base_model
    from tasks.model.generate import generate
    from tasks.model.prompts import prompt_token_ids
    from tasks.records.contract import load_contract
    from tasks.train.recipe import run_recipe
    config = parse_config(DEMO_SETTINGS)
    if args.steps:
        config = config.model_copy(update={"train": config.train.model_copy(update={"max_steps": args.steps})})
    home = Path(args.workspace or tempfile.mkdtemp(prefix="bench-eval-"))
    path = ensure_tiny_model(home / "models")
    base_ref = BaseModelRef("tiny-llama", str(path), weights_revision(path))
    records = generate_records(config.demo_records, config.demo_seed)
    adapters = {}
    for who, seed in (("candidate", config.train.seed), ("production", config.train.seed + 1)):
        out = home / who
        if not (out / "adapter" / "adapter_config.json").is_file():
            seeded = config.model_copy(update={"train": config.train.model_copy(update={"seed": seed, "checkpoint_every": 0})})
            started = time.perf_counter()
            run_recipe(seeded.recipe, base_ref, [{"prompt": r["prompt"], "completion": r["completion"]} for r in records], out)
            print(f"trained {who} ({config.train.max_steps} steps) in {time.perf_counter() - started:.0f} s", flush=True)
        adapters[who] = str(out / "adapter")
    evaluation = pd.DataFrame([json.loads(line) for line in eval_lines(max(40, config.demo_records // 10), config.demo_seed)
                               if line.endswith("}")])
    evaluation = evaluation[evaluation["completion"].str.len() > 0].reset_index(drop=True)
    torch.set_num_threads(2)
    model, tokenizer = load_base_model(base_ref)
    model = PeftModel.from_pretrained(model, adapters["candidate"], adapter_name="candidate").eval()
    model.load_adapter(adapters["production"], adapter_name="production")
    contract = load_contract(config.contract)
    specs = contract.evaluation.scorers
    template, max_new = config.train.prompt_template, config.evaluation.max_new_tokens

    started = time.perf_counter()
    scorers = build_scorers(specs, probe=(evaluation["prompt"][0], evaluation["completion"][0]))
    models = {"base": None, "candidate": "candidate", "production": "production"}
    _, scores, generated = answer_and_score(model, tokenizer, evaluation, scorers, specs, models, config.evaluation,
                                            config.train)
    summary = summarise(scores, score_names(scorers), slice_labels(contract.evaluation.slices, evaluation, specs),
                        config.evaluation)
    evaluation_seconds = time.perf_counter() - started
    print(f"\nevaluation core, 3 models x {len(evaluation)} records: {evaluation_seconds:.1f} s "
          f"({generated} tokens generated; target <= 60 s)")
    for name in ("format", "field.triage", "field.priority", "loss"):
        means = {who: summary["means"][who][name] for who in scores}
        print(f"  {name:15s} base {means['base']:.3f}  candidate {means['candidate']:.3f}  production {means['production']:.3f}")

    subset = [prompt_token_ids(tokenizer, p, template) for p in evaluation["prompt"][: args.loop_prompts]]
    model.set_adapter("candidate")
    started = time.perf_counter()
    batched = generate(model, tokenizer, subset, max_new, adapter="candidate", batch_size=config.evaluation.batch_size)
    batched_seconds = time.perf_counter() - started
    started = time.perf_counter()
    looped = []
    with torch.inference_mode():
        for ids in subset:
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            looped.append(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
    loop_seconds = time.perf_counter() - started
    tokens = sum(o.new_tokens for o in batched)
    same = sum(a.text == b for a, b in zip(batched, looped))
    print(f"\ngeneration of {len(subset)} prompts, greedy, max_new_tokens={max_new}, {tokens} tokens:")
    print(f"  per-example model.generate loop: {loop_seconds:.2f} s, {tokens / loop_seconds:.0f} tokens/s")
    print(f"  batched (left-padded, KV cache): {batched_seconds:.2f} s, {tokens / batched_seconds:.0f} tokens/s "
          f"= {loop_seconds / batched_seconds:.1f}x (target >= 3x)")
    print(f"  identical answers: {same} of {len(subset)}")


if __name__ == "__main__":
    main()
