"""staging: the candidate at alias `staging`, served over HTTP by `adapterops serve`, must pass the smoke suite
before production may move (release acts on the returned `passed` and `reasons`)."""

from prefect import flow, task

from adapterops.config import Config
from adapterops.refs import AdapterRef, CorpusRef, EvaluationResult, StagingResult
from adapterops.workspace import resolve_workspace
from flows.reporting import publish_markdown
from tasks.evaluate import evaluation_plan
from tasks.corpus import corpus_contract
from tasks.release import offline_answers, smoke_markdown, stage_candidate

stage_task = task(name="staging-smoke-suite")(stage_candidate)
offline_answers_task = task(name="offline-answers")(offline_answers)


@flow(name="staging")
def staging(config: Config, corpus: CorpusRef, adapter: AdapterRef, evaluation: EvaluationResult,
            cases: list[tuple[str, str]] | None = None) -> StagingResult:
    """cases: (prompt, offline greedy answer) pairs; default: the evaluation run's evaluation/examples.json."""
    specs, _ = evaluation_plan(config.evaluation, corpus_contract(corpus))
    cases = cases if cases is not None else offline_answers_task(evaluation.run_id)
    work_dir = resolve_workspace().runs_dir / "staging" / config.name / f"v{adapter.version}"
    result = stage_task(config.serve, adapter, cases, specs, config.evaluation.max_new_tokens, work_dir)
    verdict = "passed" if result.passed else "failed"
    publish_markdown("staging", f"Staging of {adapter.model_name} v{adapter.version} {verdict}", smoke_markdown(result))
    return result
