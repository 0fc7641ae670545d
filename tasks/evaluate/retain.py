"""The retain set: general prompts the adapter must keep answering as the base does (contract `evaluation.retain`).

Base, candidate and production answer every retain prompt; the owner's retain scorers judge the answers against
the reference, `agreement` says whether an answer is the base's own, and `kl` is the mean KL divergence from
the base's next-token distribution to the model's over each retain reference's tokens (read after its prompt),
which needs no generation. Scores are named `retain.<score>` and only rules naming `retain.` gate them (tasks/release/gate.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from adapterops.config import RETAIN_PREFIX as PREFIX
from adapterops.config import EvaluationConfig, TrainConfig
from adapterops.errors import AdapterOpsError
from adapterops.progress import Progress
from tasks.evaluate.scorers import build_scorers, score_answers, score_names
from tasks.evaluate.statistics import compare
from tasks.model.generate import adapter_context, generate
from tasks.model.prompts import conversation_token_ids
from tasks.records.prompt_pairs import prompt_pairs

AGREEMENT, KL = "agreement", "kl"


def retain_file(source: str) -> Path:
    """The retain set's file: `demo:retain` (generated once in the workspace) or a JSONL path."""
    if source == "demo:retain":
        from adapterops.general_data import write_retain_set
        from adapterops.workspace import resolve_workspace

        path = resolve_workspace().data_dir / "retain" / "demo-retain.jsonl"
        return path if path.is_file() else write_retain_set(path)
    path = Path(source).expanduser()
    if not path.is_file():
        raise AdapterOpsError(f"The retain set {source!r} (contract evaluation.retain.source) is not a file; "
                              f"write it (JSONL with prompt and completion) or fix the path (from {Path.cwd()}).")
    return path


def load_retain_set(source: str, pinned: str | None) -> tuple[pd.DataFrame, str]:
    """(records with id, prompt, completion; sha256 of the file's bytes), verified against the contract's pin now."""
    path = retain_file(source)
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if pinned and pinned != digest:
        raise AdapterOpsError(f"The retain set {path} is not the one the contract pins (evaluation.retain.digest "
                              f"{pinned[:19]}, the file is {digest[:19]}); evaluation refused. Restore the file, or "
                              "update the pin in a new contract version.")
    rows = prompt_pairs(data.decode("utf-8"), path, "the retain set")
    return pd.DataFrame(rows), digest


def log_probs(model, texts: list[tuple[list[int], int]], adapter: str | None) -> list:
    """Per (token ids, index of the answer's first token): the log-probabilities of the next token at each position
    that predicts an answer token, under one adapter (None: the base)."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode(), adapter_context(model, adapter):
        return [torch.log_softmax(model(input_ids=torch.tensor([ids], device=device)).logits[0, start - 1:-1].float(),
                                  dim=-1) for ids, start in texts]


def text_kl(model, texts: list[tuple[list[int], int]], adapter: str, base: list | None = None) -> list[float]:
    """Per text: mean over its answer's tokens of KL(base ‖ adapter) between next-token distributions; base: the
    base's log-probabilities when already computed for these texts.

    Only positions that predict the answer count: training masks the prompt, so what a model predicts inside the
    user's turn never reaches an answer, and drifts there whatever the training mix."""
    base = base if base is not None else log_probs(model, texts, None)
    return [float((b.exp() * (b - other)).sum(dim=-1).mean()) for b, other in zip(base, log_probs(model, texts, adapter))]


def retain_scores(model, tokenizer, records: pd.DataFrame, spec, who_adapter: dict[str, str | None],
                  evaluation: EvaluationConfig, train: TrainConfig) -> tuple[dict, dict, list]:
    """(answers per model, scores per model, scorers) on the retain set: the owner's scorers, agreement and KL."""
    scorers = build_scorers(list(spec.scorers), probe=(records["prompt"].iloc[0], records["completion"].iloc[0]))
    prompts = [conversation_token_ids(tokenizer, [{"role": "user", "content": p}], None, train.prompt_template)
               for p in records["prompt"]]
    kl_rows = min(spec.kl_texts, len(records))
    texts = [((prompt + tokenizer(c, add_special_tokens=False)["input_ids"])[:train.max_length], len(prompt))
             for prompt, c in zip(prompts[:kl_rows], records["completion"][:kl_rows])]
    kl_index = [row for row, (ids, start) in enumerate(texts) if len(ids) > start]   # else no answer token survived
    texts = [texts[row] for row in kl_index]
    base = log_probs(model, texts, None)      # once, for every adapter's KL
    answers, scores = {}, {}
    for number, (who, name) in enumerate(who_adapter.items(), start=1):
        progress = Progress(f"evaluate: {who} answers the retain set (model {number} of {len(who_adapter)})",
                            len(prompts), "examples")
        progress.update(0)
        outputs = generate(model, tokenizer, prompts, spec.max_new_tokens or evaluation.max_new_tokens, adapter=name,
                           batch_size=evaluation.batch_size, on_batch=progress.advance)
        answers[who] = [o.text.strip() for o in outputs]
        scores[who] = {PREFIX + k: v for k, v in score_answers(scorers, records, answers[who]).items()}
        scores[who][PREFIX + AGREEMENT] = np.asarray([a == b for a, b in zip(answers[who], answers["base"])], dtype=float)
        kl = np.full(len(records), np.nan)
        kl[kl_index] = 0.0 if name is None else text_kl(model, texts, name, base)
        scores[who][PREFIX + KL] = kl
    return answers, scores, scorers


def retain_summary(scores: dict[str, dict[str, np.ndarray]], directions: dict[str, bool], evaluation: EvaluationConfig,
                   source: str, digest: str) -> dict:
    """Means per model and the candidate's paired improvement intervals against the base and production."""
    n = len(next(iter(scores["candidate"].values())))
    rows = np.arange(n)
    with np.errstate(all="ignore"):
        means = {who: {k: float(np.nanmean(v)) for k, v in per.items()} for who, per in scores.items()}
    summary = {"examples": n, "source": source, "digest": digest, "directions": directions, "means": means,
               "vs_base": compare(scores["candidate"], scores["base"], directions, rows, evaluation.resamples,
                                  evaluation.seed, evaluation.confidence)}
    summary["vs_production"] = compare(scores["candidate"], scores["production"], directions, rows, evaluation.resamples,
                                       evaluation.seed, evaluation.confidence) if "production" in scores else None
    return summary


def evaluate_retain(model, tokenizer, spec, who_adapter: dict[str, str | None], evaluation: EvaluationConfig,
                    train: TrainConfig) -> tuple[dict, pd.DataFrame, dict, dict]:
    """The retain part of an evaluation: (summary, records, answers per model, scores per model)."""
    records, digest = load_retain_set(spec.source, spec.digest)
    answers, scores, scorers = retain_scores(model, tokenizer, records, spec, who_adapter, evaluation, train)
    directions = {PREFIX + k: v for k, v in score_names(scorers).items()} | {PREFIX + AGREEMENT: True, PREFIX + KL: False}
    return retain_summary(scores, directions, evaluation, spec.source, digest), records, answers, scores
