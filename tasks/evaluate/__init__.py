"""Held-out evaluation: the owner's scorers, paired intervals (statistics), the evaluation run (run) and
its report (report). Generation and rendering are the model stage's.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.evaluate.report import gate_markdown, score_rows, scores_markdown
from tasks.evaluate.run import evaluate_adapter, evaluation_plan

__all__ = ["evaluate_adapter", "evaluation_plan", "gate_markdown", "score_rows", "scores_markdown"]
