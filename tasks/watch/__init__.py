"""The production watch: recorded traffic read back (traffic), novelty against the corpus by the dedup stage's
MinHash LSH (novelty), reference-free scores and feedback against the release-time evaluation (quality), the
alerts and the report (report), and the window's run (stage).

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.watch.report import report_markdown
from tasks.watch.stage import watch_experiment, watch_window

__all__ = ["report_markdown", "watch_experiment", "watch_window"]
