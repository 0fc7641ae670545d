"""Staging: the candidate answers over HTTP, from the server users will run, before production moves.

The smoke suite sends evaluation prompts (with their conversation's history) to `NAME@staging` and checks
every answer is non-empty, the contract's format (regex_match scorers) holds often enough, the greedy answers
equal the offline evaluation's, and the p95 latency stays under the configured limit. A check that only the
owner's scorers define (format) runs only when they declare it, and is reported as skipped otherwise.
Template parity: for the same held-out conversations the token ids the server renders (its /tokenize) must
equal the training renderer's (the adapter's stored chat template, tokenized as training does); a mismatch
holds the release and names the first differing token.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adapterops.config import ScorerSpec, ServeConfig
from adapterops.errors import AdapterOpsError
from adapterops.escaping import md_cell
from adapterops.faults import crash_point
from adapterops.refs import AdapterRef, StagingResult
from tasks.serve.base_location import LOCAL, OVERRIDE_ENV, base_model_location
from tasks.serve.process import ServerProcess


@dataclass(frozen=True)
class SmokeAnswer:
    prompt: str
    expected: str          # the offline evaluation's greedy answer for this prompt
    status: int            # HTTP status; 0: no response
    text: str
    seconds: float
    error: str = ""


def smoke_cases(examples: list[tuple], count: int) -> list[tuple]:
    """The first `count` cases, in the evaluation's order (the same on every run): (prompt, offline answer) or
    (prompt, offline answer, history JSON, tools JSON) for a turn of a conversation."""
    return [(str(c[0]), str(c[1])) + tuple(c[2:]) for c in examples[:count]]


def case_messages(case: tuple) -> tuple[list[dict], list[dict] | None]:
    """The messages (history before the judged turn) and tools a case is sent with."""
    if len(case) > 2 and case[2]:
        return json.loads(case[2]), (json.loads(case[3]) if len(case) > 3 and case[3] else None)
    return [{"role": "user", "content": case[0]}], None


def first_difference(served: list[int], trained: list[int], decode: Callable[[list[int]], str] | None = None) -> str | None:
    """None when the ids are equal, else where they first differ, each side's token shown."""
    if served == trained:
        return None
    at = next((i for i, (a, b) in enumerate(zip(served, trained)) if a != b), min(len(served), len(trained)))
    show = (lambda ids: repr(decode(ids))) if decode else (lambda ids: "")

    def side(ids: list[int]) -> str:
        return f"{ids[at]} {show([ids[at]])}".strip() if at < len(ids) else "(end)"
    return f"token {at}: server {side(served)}, training {side(trained)} ({len(served)} vs {len(trained)} tokens)"


def local_base_path(adapter: AdapterRef, config: dict) -> str | None:
    """The folder of an adapter trained from a local base model, when it is on this machine: the registry records
    only the base's name and revision (never a path), so staging on the training machine names the folder itself."""
    if config.get("serving.base_source", LOCAL) != LOCAL or not Path(adapter.base.path).is_dir():
        return None
    return adapter.base.path


def training_renderer(adapter: AdapterRef, registered=None) -> Callable[[list[dict], list[dict] | None], list[int]]:
    """The training side of parity: the adapter's base tokenizer with the template stored with the adapter, the
    history rendered and tokenized piece by piece as training does (tasks/model/masks.py). registered: the version's
    registry entry when the caller has it (else it is read)."""
    import mlflow
    from transformers import AutoTokenizer

    from adapterops.base_models import builtin_base_location
    from tasks.records.conversation import Conversation, Message, conversation_of
    from tasks.serve.follower import registered_adapter
    from tasks.model.masks import IGNORE, conversation_ids

    registered = registered or registered_adapter(mlflow.MlflowClient(), adapter.model_name, adapter.version)
    local = local_base_path(adapter, registered.config)
    path, revision = base_model_location(registered.config | ({"serving.base_path": local} if local else {}),
                                         builtin_base_location)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    if registered.chat_template:   # the one stored with the adapter (tasks/model/prompts.adapter_template)
        tokenizer.chat_template = registered.chat_template
    template = registered.prompt_template

    def render(messages: list[dict], tools: list[dict] | None) -> list[int]:
        history = conversation_of({"messages": json.dumps(messages), "tools": json.dumps(tools) if tools else None})
        probe = Message(role="assistant", content="x")    # the turn to come: its opening is context, as in training
        conversation = Conversation(messages=tuple(m.model_copy(update={"weight": 0}) if m.role == "assistant" else m
                                                   for m in history.messages) + (probe,), tools=history.tools)
        ids, labels = conversation_ids(tokenizer, conversation, template)
        return ids[:next(i for i, label in enumerate(labels) if label != IGNORE)]

    render.decode = tokenizer.decode
    return render


def format_patterns(specs: list[ScorerSpec]) -> list[re.Pattern]:
    """The regex_match scorers the data owner declared: an answer is in format when every pattern searches true."""
    return [re.compile(s.pattern) for s in specs if s.kind == "regex_match" and s.pattern]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(-(-q * len(ordered) // 100)) - 1))]


def judge_smoke(answers: list[SmokeAnswer], patterns: list[re.Pattern], settings: ServeConfig,
                parity: list[str | None] | None = None) -> dict:
    """Pass only if every request answered 200 with text, the format share and p95 meet the limits, every
    greedy answer equals the offline one and (parity: one entry per compared conversation, None when equal) the
    server renders every conversation into the training ids; the reasons name what failed."""
    n = len(answers)
    failed = [a for a in answers if a.status != 200]
    empty = [a for a in answers if a.status == 200 and not a.text.strip()]
    in_format = sum(all(p.search(a.text) for p in patterns) for a in answers if a.status == 200)
    differ = [a for a in answers if a.status == 200 and a.text != a.expected]
    p95 = percentile([a.seconds for a in answers], 95)
    format_share = (in_format / n if n else 0.0) if patterns else None
    skipped = [] if patterns else ["format: the contract declares no regex_match scorer, so there is no format to check"]
    reasons = []
    if n == 0:
        reasons.append("no smoke prompts: the evaluation logged no answers to compare with")
    if failed:
        reasons.append(f"{len(failed)} of {n} requests failed (first: HTTP {failed[0].status} {failed[0].error[:200]})")
    if empty:
        reasons.append(f"{len(empty)} of {n} answers were empty")
    if patterns and format_share < settings.smoke_format_min:
        reasons.append(f"format compliance {format_share:.2f} < {settings.smoke_format_min:.2f}")
    if differ:
        reasons.append(f"{len(differ)} of {n} answers differ from the offline evaluation's (first prompt: "
                       f"{differ[0].prompt[:80]!r})")
    if p95 > settings.smoke_p95_seconds:
        reasons.append(f"p95 latency {p95:.2f} s > {settings.smoke_p95_seconds:g} s")
    mismatches = [m for m in (parity or []) if m is not None]
    if mismatches:
        reasons.append(f"template parity: {len(mismatches)} of {len(parity)} conversations render to other token ids on "
                       f"the server than in training (first: {mismatches[0]})")
    return {"passed": not reasons, "reasons": reasons, "requests": n, "failed": len(failed), "empty": len(empty),
            "format_share": None if format_share is None else round(format_share, 4), "format_checked": bool(patterns),
            "skipped": skipped, "differ": len(differ),
            "parity_checked": len(parity or []), "parity_mismatches": len(mismatches),
            "p95_seconds": round(p95, 4), "p50_seconds": round(percentile([a.seconds for a in answers], 50), 4)}


def smoke_markdown(result: StagingResult) -> str:
    """The Prefect artifact: the verdict, the figures and why it failed (record-derived text escaped)."""
    verdict = "passed" if result.passed else "FAILED: production unchanged"
    lines = [f"# Staging of {md_cell(result.model_name)} v{result.version}: {verdict}", "",
             "| check | value |", "|---|---|",
             f"| requests | {result.requests} ({result.failed} failed) |",
             f"| empty answers | {result.empty} |",
             f"| format compliance | {format_text(result)} |",
             f"| answers differing from offline | {result.differ} |",
             f"| template parity (server ids = training ids) | {result.parity_checked - result.parity_mismatches} of "
             f"{result.parity_checked} |",
             f"| latency p50 / p95 | {result.p50_seconds:.3f} s / {result.p95_seconds:.3f} s |"]
    if result.skipped:
        lines += ["", "## Skipped", ""] + [f"- {md_cell(s)}" for s in result.skipped]
    if result.reasons:
        lines += ["", "## Why it failed", ""] + [f"- {md_cell(r)}" for r in result.reasons]
    return "\n".join(lines)


def format_text(result: StagingResult) -> str:
    """The format figure, or 'skipped' with why: a check no scorer defines never reads as 100%."""
    if not result.format_checked or result.format_share is None:
        return "skipped (no regex_match scorer declared)"
    return f"{result.format_share:.0%}"


# --- wrapper: alias, server subprocess, HTTP requests, MLflow tags --------------------------------

def ask(http, model: str, case: tuple, max_tokens: int) -> SmokeAnswer:
    """One chat completion over HTTP (the case's history and tools, or its prompt), timed; a transport error is an
    answer with status 0."""
    import httpx

    prompt, expected = case[0], case[1]
    messages, tools = case_messages(case)
    started = time.perf_counter()
    try:
        response = http.post("/v1/chat/completions", json={"model": model, "max_tokens": max_tokens, "messages": messages}
                             | ({"tools": tools} if tools else {}))
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            return SmokeAnswer(prompt, expected, response.status_code, "", seconds, response.text)
        return SmokeAnswer(prompt, expected, 200, response.json()["choices"][0]["message"]["content"], seconds)
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as error:
        return SmokeAnswer(prompt, expected, 0, "", time.perf_counter() - started, repr(error))


def offline_answers(evaluation_run_id: str) -> list[tuple]:
    """(prompt, candidate answer[, history JSON, tools JSON]) per judged turn the offline evaluation logged
    (evaluation/examples.json)."""
    import mlflow

    # load_table searches the active experiment only; the eval run lives in the pipeline's own
    experiment = mlflow.get_run(evaluation_run_id).info.experiment_id
    table = mlflow.MlflowClient().load_table(experiment, "evaluation/examples.json", run_ids=[evaluation_run_id])
    pairs = list(zip(table["prompt"].astype(str), table["candidate_answer"].astype(str)))
    if "history" not in table.columns:
        return pairs
    tools = table["tools"].fillna("").astype(str) if "tools" in table.columns else [""] * len(table)
    return [pair + (str(h), t) for pair, h, t in zip(pairs, table["history"], tools)]


def check_parity(http, model: str, cases: list[tuple], render) -> list[str | None]:
    """Per case, None when the server's /tokenize of its messages equals the training renderer's ids, else where
    they first differ. A server without /tokenize fails every case (parity cannot be shown)."""
    out = []
    for case in cases:
        messages, tools = case_messages(case)
        response = http.post("/tokenize", json={"model": model, "messages": messages} | ({"tools": tools} if tools else {}))
        if response.status_code != 200:
            out.append(f"/tokenize answered HTTP {response.status_code} {response.text[:200]}")
            continue
        try:
            trained = render(messages, tools)
        except AdapterOpsError as error:   # training could not render it either: not a parity the release can rely on
            out.append(f"the training renderer refused the conversation: {error}")
            continue
        out.append(first_difference(response.json()["tokens"], trained, getattr(render, "decode", None)))
    return out


def stage_candidate(serve: ServeConfig, adapter: AdapterRef, cases: list[tuple], specs: list[ScorerSpec],
                    max_new_tokens: int, work_dir, renderer=None) -> StagingResult:
    """Alias the candidate `staging`, serve it in a subprocess, run the smoke suite and the template parity check
    over HTTP, stop the server, and tag the version with the outcome (tags are for display; the caller acts on the
    returned result). renderer: the training side of parity (default: `training_renderer(adapter)`)."""
    import httpx
    import mlflow
    import yaml

    from tasks.serve.follower import registered_adapter

    name, version = adapter.model_name, adapter.version
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "staging", version)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = serve.model_copy(update={"max_tokens_limit": max(serve.max_tokens_limit, max_new_tokens)})
    config_path = work_dir / "staging-serve.yaml"
    config_path.write_text(yaml.safe_dump({"serve": settings.model_dump(mode="json")}))
    answers: list[SmokeAnswer] = []
    parity: list[str | None] = []
    server_pid = None
    registered = registered_adapter(client, name, version)
    render = renderer or training_renderer(adapter, registered)
    local = local_base_path(adapter, registered.config)
    env = {OVERRIDE_ENV: local} if local and not os.environ.get(OVERRIDE_ENV) else None
    try:
        with ServerProcess([name], ["staging"], settings.poll_seconds, work_dir / "staging-serve.log", config_path,
                           env=env) as server:
            server_pid = server.process.pid
            server.wait_healthy(settings.smoke_startup_seconds)
            crash_point("staging-server-up")
            with httpx.Client(base_url=server.url, timeout=max(60.0, settings.smoke_p95_seconds * 3),
                              headers=server.headers) as http:   # its own key when API keys guard the server
                chosen = smoke_cases(cases, settings.smoke_prompts)
                answers = [ask(http, f"{name}@staging", case, max_new_tokens) for case in chosen]
                parity = check_parity(http, f"{name}@staging", chosen, render)
        figures = judge_smoke(answers, format_patterns(specs), settings, parity)
    except AdapterOpsError as error:   # the server did not start: that is a failed staging, not a crash
        figures = judge_smoke([], [], settings) | {"reasons": [f"the staging server did not come up: {error}"]}
    result = StagingResult(**figures, model_name=name, version=version, server_log=str(work_dir / "staging-serve.log"),
                           server_pid=server_pid)
    tags = {"staging.decision": "passed" if result.passed else "failed",
            "staging.reasons": "; ".join(result.reasons)[:5000] or "all checks passed",
            "staging.p95_seconds": str(result.p95_seconds), "staging.format_share": format_text(result),
            "staging.skipped": "; ".join(result.skipped) or "none",
            "staging.parity": f"{result.parity_checked - result.parity_mismatches}/{result.parity_checked}"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return result
