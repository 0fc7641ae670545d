"""Issue 24 items 3 and 5 at the boundaries between steps and inside curation and training, on real
`adapterops run` processes: kill -9 right after a step's state is recorded (after training, evaluation,
staging), each time followed by a run that continues from the next step; SIGTERM while curation publishes its
version and while training writes a checkpoint, each ending in one line and no traceback."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.integrity.test_resume import SMALL, run, runs

pytestmark = pytest.mark.slow


def config_file(folder, name: str):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(SMALL | {"name": name, "release": SMALL["release"] | {"model_name": f"{name}-a"}}))
    return path


def recorded_steps(home, model_name: str) -> list[str]:
    [state] = (home / "pipeline-state" / model_name).glob("v*.json")
    return sorted(json.loads(state.read_text()))


def test_a_run_killed_at_each_step_boundary_continues_from_the_next_step(tmp_path):
    home, config = tmp_path / "home", config_file(tmp_path, "bounds")
    for point, done in [("after-train", ["trained"]), ("after-evaluate", ["evaluated", "trained"]),
                        ("after-staging", ["evaluated", "staged", "trained"])]:
        killed = run(home, config, ADAPTEROPS_CRASH_AT=point)     # each run does one more step, then dies
        assert killed.returncode == -9, (killed.stdout + killed.stderr)[-3000:]
        assert recorded_steps(home, "bounds-a") == done, point
    finished = run(home, config)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-3000:]
    assert "continued from release" in output and "promoted to production" in output, output[-3000:]
    assert len([r for r in runs(home, "bounds/adapters") if r.data.tags.get("stage") == "train"]) == 1


@pytest.mark.parametrize("point, step", [("version-folder", "curation"), ("train-after-checkpoint", "training")])
def test_sigterm_inside_a_step_is_one_line_and_the_next_run_finishes(tmp_path, point, step):
    home, config = tmp_path / "home", config_file(tmp_path, f"term-{step}")
    stopped = run(home, config, ADAPTEROPS_SIGNAL_AT=f"{point}:TERM")
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode == 143, output[-3000:]
    assert f"interrupted at {step}; `adapterops run` resumes" in output and "Traceback" not in output, output[-3000:]
    finished = run(home, config)
    assert finished.returncode == 0 and "promoted to production" in finished.stdout + finished.stderr, \
        (finished.stdout + finished.stderr)[-3000:]
