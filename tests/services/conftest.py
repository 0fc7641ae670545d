"""The lane's services, started for a test and stopped by pid afterwards, also when it fails."""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.services.cluster import start_services, stop_services
from tests.services.team import can_hide_folders


@pytest.fixture()
def services():
    if shutil.which("unshare") is None or not can_hide_folders():
        pytest.skip("the lane hides the curation workspace from the gpu worker with `unshare -m` (root or "
                    "CAP_SYS_ADMIN); this machine refuses it")
    root = Path(tempfile.mkdtemp(prefix="adapterops-services-"))   # not under pytest's 0700 folder: PostgreSQL runs as nobody
    started = None
    try:
        started = start_services(root)
        yield started
    finally:
        if started is not None:
            stop_services(started)
        for log in sorted(root.glob("*.log")):     # shown by pytest when the test failed
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        shutil.rmtree(root, ignore_errors=True)
