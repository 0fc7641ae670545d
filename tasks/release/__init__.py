"""Release: the gate's judgement (gate), the MLflow registry (aliases, audit trail, rollback), the staging
smoke suite, and export.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.release.authority import release_contract, verify_move
from tasks.release.export import export_adapter
from tasks.release.gate import comparison, decide
from tasks.release.registry import (
    aliases_by_version,
    production_history,
    promote_production,
    registered_version,
    registry_call,
    registry_failure,
    release_adapter,
    rollback_production,
)
from tasks.release.staging import format_text, offline_answers, smoke_markdown, stage_candidate

__all__ = [
    "aliases_by_version", "comparison", "decide", "release_contract", "verify_move", "export_adapter", "format_text", "offline_answers",
    "production_history", "promote_production", "registered_version",
    "registry_call", "registry_failure", "release_adapter", "rollback_production", "smoke_markdown",
    "stage_candidate",
]
