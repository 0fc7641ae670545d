"""LLM judges through any OpenAI-compatible chat-completions endpoint: guidelines, correctness, pairwise.

Called with the official openai client (the config's base URL and model, the key from the environment
variable it names), with a timeout per call, retries and one budget of calls per evaluation. A call that
fails, times out, answers malformed or is over budget leaves its example unscored (NaN) with the reason
counted: never a silent 0 or 1. (MLflow 3.17's judges read the endpoint and key from process-wide
environment variables and have no call budget, so they are not used here.)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adapterops.config import JudgeConfig, ScorerSpec
from adapterops.errors import AdapterOpsError
from adapterops.progress import Progress

UNSCORED_REASONS = ("timeout", "failed", "malformed", "over_budget")
SINGLE = {"yes": 1.0, "no": 0.0}
PAIRWISE = {"a": "a", "b": "b", "tie": "tie"}


@dataclass(frozen=True)
class Verdict:
    value: float    # the score; NaN when unscored
    why: str        # the judge's rationale, or why it is unscored (timeout, failed: ..., malformed: ..., over_budget)

    @property
    def reason(self) -> str | None:
        """The unscored reason (one of UNSCORED_REASONS), None when scored."""
        return None if math.isfinite(self.value) else self.why.split(":")[0]


class JudgeClient:
    """One evaluation's judge: the openai client, the call budget (retries count) shared by every judge scorer."""

    def __init__(self, settings: JudgeConfig, environ=None):
        import openai

        key = (os.environ if environ is None else environ).get(settings.api_key_env)
        if not key:
            raise AdapterOpsError(f"evaluation.judge.api_key_env names {settings.api_key_env}, which is not set: export "
                                  f"it with the key of {settings.base_url} (any value for a server that needs none), "
                                  "or unset evaluation.judge.base_url to skip the llm_judge scorers.")
        self.settings = settings
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout_seconds,
                                    max_retries=0)   # retries are ours: each one counts against the budget
        self.calls = 0
        self._lock = threading.Lock()

    def _take_call(self) -> bool:
        with self._lock:
            if self.calls >= self.settings.max_calls:
                return False
            self.calls += 1
            return True

    def ask(self, messages: list[dict]) -> tuple[str | None, str]:
        """(the answer's text, "") or (None, why unscored); a refused key stops the evaluation."""
        import openai

        why = "failed"
        for attempt in range(self.settings.retries + 1):
            if not self._take_call():
                return None, "over_budget"
            try:
                response = self.client.chat.completions.create(model=self.settings.model, messages=messages,
                                                               temperature=0)
                return (response.choices[0].message.content or ""), ""
            except openai.APITimeoutError:
                why = "timeout"
            except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
                raise AdapterOpsError(f"The judge at {self.settings.base_url} refused the key in "
                                      f"{self.settings.api_key_env} (HTTP {error.status_code}); check the key.") from None
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as error:
                why = f"failed: {type(error).__name__}"
            except openai.APIStatusError as error:            # another 4xx: asking again does not help
                return None, f"failed: HTTP {error.status_code}"
            except (openai.APIResponseValidationError, ValueError, AttributeError, IndexError, TypeError) as error:
                return None, f"malformed: not a chat completion ({type(error).__name__})"
            if attempt < self.settings.retries:
                time.sleep(min(2.0, 0.2 * 2 ** attempt))
        return None, why

    def map(self, function, items: list, label: str) -> list:
        """function over items, settings.concurrency at a time, in order; progress lines with an ETA as they finish."""
        progress = Progress(f"evaluate: {label}", len(items), "examples")
        progress.update(0)

        def one(item):
            result = function(item)
            with self._lock:
                progress.advance(extra=f"{self.calls} of {self.settings.max_calls} calls used")
            return result

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            return list(pool.map(one, items))


def parse_answer(content: str, key: str, allowed: dict) -> tuple[object, str] | None:
    """(allowed[value], rationale) from the judge's JSON object (fenced or not); None when it is not one."""
    start, end = content.find("{"), content.rfind("}")
    try:
        answer = json.loads(content[start:end + 1]) if start >= 0 else None
    except ValueError:
        return None
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        return None
    return allowed[value.strip().lower()], str(answer.get("rationale") or "")[:500]


SYSTEM = ("You are a strict evaluator of a support assistant's answers. Reply with one JSON object only, no other "
          "text: {reply}.")


def single_messages(spec: ScorerSpec, prompt: str, answer: str, reference: str | None) -> list[dict]:
    """guidelines: does the answer follow them; correctness: is it right (against the reference, when there is one)."""
    reply = '{"result": "yes" or "no", "rationale": "<one sentence>"}'
    if spec.judge == "guidelines":
        task = f"Does the answer follow these guidelines?\n\nGuidelines:\n{spec.guidelines}"
    else:
        task = "Is the answer correct and complete for the request" + \
               (", given the expected response?" if reference is not None else "?")
    parts = [task, f"Request:\n{prompt}", f"Answer:\n{answer}"]
    if reference is not None and spec.judge == "correctness":
        parts.append(f"Expected response:\n{reference}")
    return [{"role": "system", "content": SYSTEM.format(reply=reply)}, {"role": "user", "content": "\n\n".join(parts)}]


def pairwise_messages(spec: ScorerSpec, prompt: str, first: str, second: str) -> list[dict]:
    reply = '{"better": "A", "B" or "tie", "rationale": "<one sentence>"}'
    criteria = f"\n\nBetter means: {spec.guidelines}" if spec.guidelines else ""
    text = (f"Which answer serves the request better?{criteria}\n\nRequest:\n{prompt}\n\nAnswer A:\n{first}\n\n"
            f"Answer B:\n{second}")
    return [{"role": "system", "content": SYSTEM.format(reply=reply)}, {"role": "user", "content": text}]


def candidate_first(key: str) -> bool:
    """Which side the candidate is shown on, fixed per example (no position bias in one direction)."""
    return hashlib.sha256(key.encode("utf-8")).digest()[0] % 2 == 0


def single_verdict(client: JudgeClient, messages: list[dict]) -> Verdict:
    content, why = client.ask(messages)
    if content is None:
        return Verdict(math.nan, why)
    parsed = parse_answer(content, "result", SINGLE)
    if parsed is None:
        return Verdict(math.nan, f"malformed: {content[:80]!r}")
    return Verdict(*parsed)


def pairwise_verdict(client: JudgeClient, messages: list[dict], first_is_candidate: bool) -> Verdict:
    """1: the candidate's answer is better, 0: the other's, 0.5: a tie."""
    content, why = client.ask(messages)
    if content is None:
        return Verdict(math.nan, why)
    parsed = parse_answer(content, "better", PAIRWISE)
    if parsed is None:
        return Verdict(math.nan, f"malformed: {content[:80]!r}")
    side, rationale = parsed
    value = 0.5 if side == "tie" else float((side == "a") == first_is_candidate)
    return Verdict(value, rationale)


def judge_single(client: JudgeClient, spec: ScorerSpec, prompts: list[str], answers: list[str],
                 references: list[str | None], whose: str = "answers") -> list[Verdict]:
    """One verdict per answer (1 yes, 0 no, NaN unscored)."""
    items = [single_messages(spec, p, a, r) for p, a, r in zip(prompts, answers, references)]
    return client.map(lambda messages: single_verdict(client, messages), items, f"judge {spec.label} on {whose}")


def judge_pairwise(client: JudgeClient, spec: ScorerSpec, ids: list[str], prompts: list[str], candidate: list[str],
                   other: list[str], whose: str = "answer pairs") -> list[Verdict]:
    """Per example: is the candidate's answer better than the other's (1, 0, 0.5 a tie, NaN unscored)."""
    items = []
    for key, prompt, mine, theirs in zip(ids, prompts, candidate, other):
        first = candidate_first(key)
        items.append((pairwise_messages(spec, prompt, *((mine, theirs) if first else (theirs, mine))), first))
    return client.map(lambda item: pairwise_verdict(client, *item), items, f"judge {spec.label} on {whose}")


def unscored_counts(verdicts: list[Verdict]) -> dict[str, int]:
    """Unscored examples by reason (only the reasons that occurred)."""
    counts: dict[str, int] = {}
    for verdict in verdicts:
        if (reason := verdict.reason) is not None:
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def judge_answers(client: JudgeClient, judges: list[ScorerSpec], records: pd.DataFrame, answers: dict[str, list[str]],
                  scores: dict[str, dict[str, np.ndarray]]) -> tuple[dict, dict]:
    """Every llm_judge scorer over the answers, into `scores` (NaN: unscored); (per judge its counts, per judge and
    model the rationale or unscored reason of each example)."""
    n = len(records)
    ids, prompts = records["id"].astype(str).tolist(), records["prompt"].astype(str).tolist()
    references = records["completion"].astype(str).tolist()
    counts, notes = {}, {}
    for spec in judges:
        verdicts: dict[str, list] = {}
        if spec.judge == "pairwise":     # the candidate against production, else the base; the third model: unscored
            against = "production" if "production" in answers else "base"
            verdicts["candidate"] = judge_pairwise(client, spec, ids, prompts, answers["candidate"], answers[against],
                                                 f"candidate vs {against}")
            values = np.asarray([v.value for v in verdicts["candidate"]], dtype=float)
            for who in answers:
                scores[who][spec.label] = values if who == "candidate" else 1 - values if who == against else np.full(n, np.nan)
            judged = ["candidate", against]
        else:
            against = None
            for who, texts in answers.items():
                given = references if spec.judge == "correctness" else [None] * n
                verdicts[who] = judge_single(client, spec, prompts, texts, given, f"{who} answers")
                scores[who][spec.label] = np.asarray([v.value for v in verdicts[who]], dtype=float)
            judged = list(answers)
        scored = min(int(np.isfinite(scores[who][spec.label]).sum()) for who in judged)
        counts[spec.label] = {"judge": spec.judge, "against": against, "scored_share": scored / n if n else 0.0,
                              "unscored": {who: unscored_counts(v) for who, v in verdicts.items()}}
        notes[spec.label] = {who: [v.why for v in found] for who, found in verdicts.items()}
    return counts, notes
