"""Typed references with placeholder fields, for tests that exercise one step without running the ones before it."""

from adapterops.refs import AdapterRef, CorpusRef, EvaluationResult, StagingResult


def fake_corpus(**fields) -> CorpusRef:
    return CorpusRef(**{"pipeline": "tickets", "version": 1, "digest": "sha256:" + "0" * 64, "path": "/nonexistent",
                        "run_id": "no-run", "new": True, "counts": {}, "contract": "tickets", "contract_version": 1,
                        "owners": ("dana.k",)} | fields)


def fake_adapter(**fields) -> AdapterRef:
    return AdapterRef(**{"model_name": "m", "version": "1", "run_id": "no-run", "recipe": "r8-s2-000000",
                         "adapter_dir": "/nonexistent", "adapter_bytes": 1, "logged_bytes": 1, "base_name": "tiny",
                         "base_path": "/nonexistent", "base_revision": "r", "final_loss": 1.0, "steps": 2,
                         "device": "cpu", "examples": 4, "truncated": 0, "resumed_from_step": 0} | fields)


def fake_evaluation(**fields) -> EvaluationResult:
    return EvaluationResult(**{"model_name": "m", "version": "1", "production_version": None, "eval_digest": "sha256:0",
                               "examples": 0, "summary": {}, "failures": {}, "generated_tokens": 0, "seconds": 0.0,
                               "run_id": "no-run"} | fields)


def fake_staging(**fields) -> StagingResult:
    return StagingResult(**{"model_name": "m", "version": "1", "passed": True, "reasons": [], "requests": 0, "failed": 0,
                            "empty": 0, "format_share": 1.0, "format_checked": False, "differ": 0, "p95_seconds": 0.0,
                            "p50_seconds": 0.0, "server_log": "", "server_pid": None} | fields)
