"""Labeling: corpus records out as tasks (Label Studio, Argilla, JSONL), annotations back in, settled by a
policy, checked against the contract and applied by the next curation.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.label.files import read_label_files
from tasks.label.label_studio import connect, parse_project, pull_tasks, push_tasks, server
from tasks.label.labeling import (
    annotations_from_label_studio,
    annotations_of,
    apply_decisions,
    export_file,
    format_hint,
    label_file,
    label_studio_interface,
    listed_ids,
    version_tasks,
)
from tasks.label.outcomes import reject_failing_corrections
from tasks.label.policy import disputed_tasks, settle

__all__ = [
    "annotations_from_label_studio", "annotations_of", "apply_decisions", "connect", "disputed_tasks",
    "export_file", "format_hint", "label_file", "label_studio_interface", "listed_ids", "parse_project", "pull_tasks",
    "push_tasks", "read_label_files", "reject_failing_corrections", "server", "settle", "version_tasks",
]
