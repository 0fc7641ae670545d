import logging
import subprocess
import sys

from adapterops.errors import AdapterOpsError
from cli.common import _HideUserErrorTracebacks


def test_user_error_is_one_line_without_traceback_and_exits_non_zero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_stepz: 3\n")
    result = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", "run", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "unknown field 'train.max_stepz'" in result.stderr


def test_prefect_log_records_of_user_errors_lose_their_traceback_only():
    def record(error):
        try:
            raise error
        except Exception:
            return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())

    user, bug = record(AdapterOpsError("fix the config")), record(ValueError("a bug"))
    assert _HideUserErrorTracebacks().filter(user) and user.exc_info is None
    assert _HideUserErrorTracebacks().filter(bug) and bug.exc_info is not None
