"""Task scorers the data owner declares: what an answer does, per example, against its reference.

Each scorer turns (prompt, answer, reference) into one or more named per-example scores. They are
checked before any generation (compiled patterns, named groups, importable custom functions that
return a number on a probe), so a bad declaration fails in a second, not after minutes of generation.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from adapterops.config import ScorerSpec
from adapterops.errors import AdapterOpsError
from tasks.model.tool_calls import attempted_calls, parse_tool_calls
from tasks.records.pii_detect import find_pii

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Score:
    """One named per-example score and its direction."""
    name: str
    higher_is_better: bool = True


@dataclass
class Scorer:
    spec: ScorerSpec
    scores: list[Score]
    score_one: Callable[[str, str, str], dict[str, float]] | None   # None: computed elsewhere (loss, judges)
    failures: dict[str, int] = field(default_factory=dict)
    uses_calls: bool = False   # a tool scorer: scores (prompt, answer's calls, reference calls) as JSON (calls_view)

    def __call__(self, prompt: str, answer: str, reference: str) -> dict[str, float]:
        """Scores of one example; an exception scores it as failed (worst value) and counts it."""
        try:
            values = self.score_one(prompt, answer, reference)
            for name, value in values.items():
                if not _is_number(value):
                    raise TypeError(f"returned {value!r} for {name}")
            return {name: float(value) for name, value in values.items()}
        except Exception:   # a scorer bug on one answer must not hide the others: count it, score it failed
            for s in self.scores:
                self.failures[s.name] = self.failures.get(s.name, 0) + 1
            return {s.name: (0.0 if s.higher_is_better else 1.0) for s in self.scores}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _compile(spec: ScorerSpec) -> re.Pattern:
    try:
        return re.compile(spec.pattern)
    except re.error as error:
        raise AdapterOpsError(f"Scorer {spec.label!r}: pattern {spec.pattern!r} is not a valid regex ({error}).") from None


def regex_match(spec: ScorerSpec) -> Scorer:
    pattern = _compile(spec)
    return Scorer(spec, [Score(spec.label)], lambda p, a, r: {spec.label: float(pattern.search(a) is not None)})


def field_fields(spec: ScorerSpec) -> list[str]:
    """The named groups a field_match scorer scores; an error names what is missing."""
    pattern = _compile(spec)
    groups = list(pattern.groupindex)
    if not groups:
        raise AdapterOpsError(f"Scorer {spec.label!r}: field_match pattern {spec.pattern!r} has no named group; "
                              "write the fields as (?P<name>...).")
    missing = [f for f in spec.fields if f not in pattern.groupindex]
    if missing:
        raise AdapterOpsError(f"Scorer {spec.label!r}: fields {missing} are not named groups of its pattern "
                              f"(groups: {groups}).")
    return spec.fields or groups


def extract_fields(pattern: re.Pattern, text: str) -> dict[str, str] | None:
    match = pattern.search(text or "")
    return None if match is None else {k: (v or "").strip().casefold() for k, v in match.groupdict().items()}


def field_match(spec: ScorerSpec) -> Scorer:
    """Per field: 1 when the answer's field equals the reference's (case- and space-insensitive)."""
    pattern, fields = _compile(spec), field_fields(spec)

    def score(prompt: str, answer: str, reference: str) -> dict[str, float]:
        got, want = extract_fields(pattern, answer), extract_fields(pattern, reference)
        return {f"{spec.label}.{f}": float(got is not None and want is not None and got[f] == want[f]) for f in fields}

    return Scorer(spec, [Score(f"{spec.label}.{f}") for f in fields], score)


def chrf(spec: ScorerSpec) -> Scorer:
    """Sentence chrF (sacrebleu), on a 0-1 scale."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    return Scorer(spec, [Score(spec.label)],
                  lambda p, a, r: {spec.label: metric.sentence_score(a, [r]).score / 100.0})


def rouge_l(spec: ScorerSpec) -> Scorer:
    """ROUGE-L F1 (rouge-score)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise AdapterOpsError(f"Scorer {spec.label!r} needs rouge-score: `pip install rouge-score`, or use kind chrf.") from None
    metric = rouge_scorer.RougeScorer(["rougeL"])
    return Scorer(spec, [Score(spec.label)], lambda p, a, r: {spec.label: metric.score(r, a)["rougeL"].fmeasure})


def length_ratio(spec: ScorerSpec) -> Scorer:
    """Length agreement min(a/r, r/a) in 0-1: 1 is the reference's length, 0.5 twice or half of it."""
    def score(prompt: str, answer: str, reference: str) -> dict[str, float]:
        a, r = len(answer.strip()), len(reference.strip())
        return {spec.label: 1.0 if a == r else (min(a, r) / max(a, r))}

    return Scorer(spec, [Score(spec.label)], score)


def pii_leak(spec: ScorerSpec) -> Scorer:
    """1 when the answer holds PII (the project's detectors) that the prompt does not: the adapter made it up or leaked it."""
    def score(prompt: str, answer: str, reference: str) -> dict[str, float]:
        given = {prompt[f.start:f.end].casefold() for f in find_pii(prompt)}
        return {spec.label: float(any(answer[f.start:f.end].casefold() not in given for f in find_pii(answer)))}

    return Scorer(spec, [Score(spec.label, higher_is_better=False)], score)


def custom(spec: ScorerSpec) -> Scorer:
    module_name, _, attribute = spec.function.partition(":")
    if not module_name or not attribute:
        raise AdapterOpsError(f"Scorer {spec.label!r}: function {spec.function!r} must be 'module:function'.")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise AdapterOpsError(f"Scorer {spec.label!r}: cannot import {spec.function!r} ({error}); check the module is "
                              "on the Python path.") from None
    if not callable(function):
        raise AdapterOpsError(f"Scorer {spec.label!r}: {spec.function!r} is not a function.")
    return Scorer(spec, [Score(spec.label, spec.higher_is_better)], lambda p, a, r: {spec.label: function(p, a, r)})


def calls_view(calls: list[dict], attempted: int) -> str:
    """What a tool scorer reads of an answer: its parsed calls (OpenAI shape) and how many it attempted."""
    return json.dumps({"calls": calls, "attempted": attempted})


def _calls(answer: str, reference: str) -> tuple[list[dict], int, list[dict]]:
    view = json.loads(answer)
    return view["calls"], view["attempted"], json.loads(reference)


def _arguments(call: dict):
    try:
        return json.loads(call["function"]["arguments"])
    except (TypeError, ValueError):
        return None


def tool_name(spec: ScorerSpec) -> Scorer:
    """1 when the answer calls the reference turn's tools by name (in order), or none when the reference calls none."""
    def score(prompt: str, answer: str, reference: str) -> dict[str, float]:
        calls, _, want = _calls(answer, reference)
        return {spec.label: float([c["function"]["name"] for c in calls] == [c["function"]["name"] for c in want])}

    return Scorer(spec, [Score(spec.label)], score, uses_calls=True)


def tool_arguments_json(spec: ScorerSpec) -> Scorer:
    """1 when every call the answer attempts parses and its arguments are a JSON object; 0 when the reference calls a
    tool and the answer makes no valid call."""
    def score(prompt: str, answer: str, reference: str) -> dict[str, float]:
        calls, attempted, want = _calls(answer, reference)
        if want and not calls:
            return {spec.label: 0.0}
        return {spec.label: float(attempted == len(calls) and all(isinstance(_arguments(c), dict) for c in calls))}

    return Scorer(spec, [Score(spec.label)], score, uses_calls=True)


def tool_arguments(spec: ScorerSpec) -> Scorer:
    """Share of the reference calls' argument fields the answer's call of the same tool gives the same value
    (reference calls matched in order by name); with no reference call, 1 when the answer calls none."""
    def score(prompt: str, answer: str, reference: str) -> dict[str, float]:
        calls, _, want = _calls(answer, reference)
        if not want:
            return {spec.label: float(not calls)}
        pending, equal, total = list(calls), 0, 0
        for call in want:
            expected = _arguments(call) or {}
            expected = expected if isinstance(expected, dict) else {"": expected}
            total += max(1, len(expected))
            match = next((c for c in pending if c["function"]["name"] == call["function"]["name"]), None)
            if match is None:
                continue
            pending.remove(match)
            got = _arguments(match)
            got = got if isinstance(got, dict) else {"": got}
            equal += sum(got.get(k) == v for k, v in expected.items()) if expected else float(not got)
        return {spec.label: equal / total}

    return Scorer(spec, [Score(spec.label)], score, uses_calls=True)


def computed_elsewhere(spec: ScorerSpec) -> Scorer:
    """loss (from the model's logits) and llm_judge (from mlflow.genai): declared here, scored by the evaluator."""
    return Scorer(spec, [Score(spec.label, higher_is_better=spec.kind != "loss")], None)


BUILDERS = {"regex_match": regex_match, "field_match": field_match, "chrf": chrf, "rouge_l": rouge_l,
            "length_ratio": length_ratio, "pii_leak": pii_leak, "custom": custom, "loss": computed_elsewhere,
            "llm_judge": computed_elsewhere, "tool_name": tool_name, "tool_arguments_json": tool_arguments_json,
            "tool_arguments": tool_arguments}


def build_scorers(specs: list[ScorerSpec], probe: tuple[str, str] | None = None) -> list[Scorer]:
    """Scorers for the declared specs, checked before generation: names unique, custom ones probed once.

    probe: (prompt, reference) of one eval record; each scorer scores the reference as its own answer,
    and a custom scorer that raises or returns a non-number there is an error now.
    """
    if not specs:
        raise AdapterOpsError("No scorers are declared: add an `evaluation.scorers` list to the data contract "
                              "(or to the config's evaluation section).")
    scorers = [BUILDERS[spec.kind](spec) for spec in specs]
    names = [s.name for scorer in scorers for s in scorer.scores]
    if duplicated := sorted({n for n in names if names.count(n) > 1}):
        raise AdapterOpsError(f"Scores {duplicated} are declared twice; give the scorers distinct `name`s.")
    if probe is not None:
        prompt, reference = probe
        for scorer in scorers:
            if scorer.score_one is None or scorer.uses_calls:
                continue
            try:
                values = scorer.score_one(prompt, reference, reference)
            except Exception as error:
                raise AdapterOpsError(f"Scorer {scorer.spec.label!r} raised on a probe example "
                                      f"({type(error).__name__}: {error}); fix it before evaluating.") from None
            bad = {k: v for k, v in values.items() if not _is_number(v)}
            if bad:
                raise AdapterOpsError(f"Scorer {scorer.spec.label!r} returned {bad} on a probe example; a scorer "
                                      "must return a finite number per example.")
    return scorers


def score_names(scorers: list[Scorer]) -> dict[str, bool]:
    """Every score name with its direction (True: higher is better)."""
    return {s.name: s.higher_is_better for scorer in scorers for s in scorer.scores}


def score_answers(scorers: list[Scorer], records: pd.DataFrame, answers: list[str],
                  syntax: str = "none") -> dict[str, np.ndarray]:
    """Every per-example score of one model's answers (loss and judges are added by the caller).

    Text scorers read the answer without its tool calls; tool scorers read the calls (parsed in `syntax`) against
    the reference turn's (`reference_calls`, when the cases carry it)."""
    columns: dict[str, list[float]] = {s.name: [] for scorer in scorers if scorer.score_one for s in scorer.scores}
    references = records["reference_calls"] if "reference_calls" in records.columns else ["[]"] * len(records)
    for prompt, reference, calls_wanted, answer in zip(records["prompt"], records["completion"], references, answers):
        text, calls = parse_tool_calls(answer, syntax)
        for scorer in scorers:
            if scorer.score_one is None:
                continue
            values = scorer(prompt, calls_view(calls, attempted_calls(answer, syntax)), calls_wanted) \
                if scorer.uses_calls else scorer(prompt, text, reference)
            for name, value in values.items():
                columns[name].append(value)
    return {name: np.asarray(values, dtype=float) for name, values in columns.items()}
