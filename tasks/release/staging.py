"""Staging: the candidate answers over HTTP, from the server users will run, before production moves.

The smoke suite sends evaluation prompts to `NAME@staging` and checks every answer is non-empty, the
contract's format (regex_match scorers) holds often enough, the greedy answers equal the offline
evaluation's, and the p95 latency stays under the configured limit. A check that only the owner's
scorers define (format) runs only when they declare it, and is reported as skipped otherwise.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from adapterops.config import ScorerSpec, ServeConfig
from adapterops.errors import AdapterOpsError
from adapterops.escaping import md_cell
from adapterops.faults import crash_point
from adapterops.refs import AdapterRef, StagingResult
from tasks.serve.process import ServerProcess


@dataclass(frozen=True)
class SmokeAnswer:
    prompt: str
    expected: str          # the offline evaluation's greedy answer for this prompt
    status: int            # HTTP status; 0: no response
    text: str
    seconds: float
    error: str = ""


def smoke_cases(examples: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """The first `count` (prompt, offline answer) pairs, in the evaluation's order (the same on every run)."""
    return [(str(p), str(a)) for p, a in examples[:count]]


def format_patterns(specs: list[ScorerSpec]) -> list[re.Pattern]:
    """The regex_match scorers the data owner declared: an answer is in format when every pattern searches true."""
    return [re.compile(s.pattern) for s in specs if s.kind == "regex_match" and s.pattern]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(-(-q * len(ordered) // 100)) - 1))]


def judge_smoke(answers: list[SmokeAnswer], patterns: list[re.Pattern], settings: ServeConfig) -> dict:
    """Pass only if every request answered 200 with text, the format share and p95 meet the limits and every
    greedy answer equals the offline one; the reasons name what failed."""
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
    return {"passed": not reasons, "reasons": reasons, "requests": n, "failed": len(failed), "empty": len(empty),
            "format_share": None if format_share is None else round(format_share, 4), "format_checked": bool(patterns),
            "skipped": skipped, "differ": len(differ),
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

def ask(http, model: str, prompt: str, expected: str, max_tokens: int) -> SmokeAnswer:
    """One chat completion over HTTP, timed; a transport error is an answer with status 0."""
    import httpx

    started = time.perf_counter()
    try:
        response = http.post("/v1/chat/completions", json={"model": model, "max_tokens": max_tokens,
                                                            "messages": [{"role": "user", "content": prompt}]})
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            return SmokeAnswer(prompt, expected, response.status_code, "", seconds, response.text)
        return SmokeAnswer(prompt, expected, 200, response.json()["choices"][0]["message"]["content"], seconds)
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as error:
        return SmokeAnswer(prompt, expected, 0, "", time.perf_counter() - started, repr(error))


def offline_answers(evaluation_run_id: str) -> list[tuple[str, str]]:
    """(prompt, candidate answer) pairs the offline evaluation logged (evaluation/examples.json)."""
    import mlflow

    # load_table searches the active experiment only; the eval run lives in the pipeline's own
    experiment = mlflow.get_run(evaluation_run_id).info.experiment_id
    table = mlflow.MlflowClient().load_table(experiment, "evaluation/examples.json", run_ids=[evaluation_run_id])
    return list(zip(table["prompt"].astype(str), table["candidate_answer"].astype(str)))


def stage_candidate(serve: ServeConfig, adapter: AdapterRef, cases: list[tuple[str, str]], specs: list[ScorerSpec],
                    max_new_tokens: int, work_dir) -> StagingResult:
    """Alias the candidate `staging`, serve it in a subprocess, run the smoke suite over HTTP, stop the server,
    and tag the version with the outcome (tags are for display; the caller acts on the returned result)."""
    import httpx
    import mlflow
    import yaml

    name, version = adapter.model_name, adapter.version
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "staging", version)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = serve.model_copy(update={"max_tokens_limit": max(serve.max_tokens_limit, max_new_tokens)})
    config_path = work_dir / "staging-serve.yaml"
    config_path.write_text(yaml.safe_dump({"serve": settings.model_dump(mode="json")}))
    answers: list[SmokeAnswer] = []
    server_pid = None
    try:
        with ServerProcess([name], ["staging"], settings.poll_seconds, work_dir / "staging-serve.log", config_path) as server:
            server_pid = server.process.pid
            server.wait_healthy(settings.smoke_startup_seconds)
            crash_point("staging-server-up")
            with httpx.Client(base_url=server.url, timeout=max(60.0, settings.smoke_p95_seconds * 3),
                              headers=server.headers) as http:   # its own key when API keys guard the server
                answers = [ask(http, f"{name}@staging", p, e, max_new_tokens) for p, e in smoke_cases(cases, settings.smoke_prompts)]
        figures = judge_smoke(answers, format_patterns(specs), settings)
    except AdapterOpsError as error:   # the server did not start: that is a failed staging, not a crash
        figures = judge_smoke([], [], settings) | {"reasons": [f"the staging server did not come up: {error}"]}
    result = StagingResult(**figures, model_name=name, version=version, server_log=str(work_dir / "staging-serve.log"),
                           server_pid=server_pid)
    tags = {"staging.decision": "passed" if result.passed else "failed",
            "staging.reasons": "; ".join(result.reasons)[:5000] or "all checks passed",
            "staging.p95_seconds": str(result.p95_seconds), "staging.format_share": format_text(result),
            "staging.skipped": "; ".join(result.skipped) or "none"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return result
