"""Progress where a step waits: totals, elapsed time and an ETA, reported at a bounded rate, always at the end;
the evaluation reports per model, the tiny base model's build reports its steps."""

import logging

from adapterops.progress import Progress, duration, progress_line


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_line_has_the_total_the_share_the_elapsed_time_and_an_eta():
    assert progress_line("evaluate: base", 30, 120, "examples", 15.0) == \
        "evaluate: base: 30/120 examples (25%), 15 s elapsed, about 45 s left"
    assert progress_line("train", 200, 200, "steps", 3725.0, "loss 1.2") == \
        "train: 200/200 steps (100%), 1 h 02 min elapsed, done, loss 1.2"
    assert progress_line("pull", 4096, None, "bytes", 2.0) == "pull: 4096 bytes, 2 s elapsed"
    assert duration(185) == "3 min 05 s"


def test_updates_are_rate_limited_but_the_first_and_the_last_always_reported():
    clock, seen = Clock(), []
    progress = Progress("train", 100, "steps", every_seconds=10, clock=clock, on_update=lambda d, t, line: seen.append(d))
    for step in range(1, 101):
        clock.now = step * 0.5                 # 50 s in all: a report every 10 s, not every step
        progress.update(step)
    assert seen[0] == 1 and seen[-1] == 100 and 4 <= len(seen) <= 7
    assert progress.lines[-1].startswith("train: 100/100 steps (100%), 50 s elapsed, done")


def test_without_any_handler_lines_reach_stderr(capsys):
    logger = logging.getLogger("adapterops.progress")
    saved, propagate = logger.handlers[:], logger.propagate
    try:
        logger.handlers[:], logger.propagate = [], False       # a bare process: no Prefect, no logging set up
        Progress("build", 3, "steps").update(3)
        assert "build: 3/3 steps (100%)" in capsys.readouterr().err
    finally:
        logger.handlers[:], logger.propagate = saved, propagate


def test_the_tiny_base_model_build_reports_its_steps_and_pretraining_then_comes_from_the_cache(tmp_path, caplog, monkeypatch):
    from adapterops import tiny_model

    monkeypatch.setitem(tiny_model.PRETRAIN, "steps", 2)          # the real build pretrains for minutes
    monkeypatch.setitem(tiny_model.PRETRAIN, "records", 60)
    monkeypatch.setenv(tiny_model.CACHE_ENV, str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="adapterops.progress"):
        built = tiny_model.ensure_tiny_model(tmp_path / "first")
    lines = [r.getMessage() for r in caplog.records if r.name == "adapterops.progress"]
    assert lines[0].startswith("base model tiny-llama: building in") and "0/4 steps" in lines[0]
    assert any("pretraining: 2/2 steps (100%)" in line and "loss" in line for line in lines)
    assert "4/4 steps (100%)" in lines[-1] and "saved to" in lines[-1]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="adapterops.progress"):
        copied = tiny_model.ensure_tiny_model(tmp_path / "second")
    assert [r.getMessage() for r in caplog.records][0].startswith("base model tiny-llama: copied from the model cache")
    assert tiny_model.weights_revision(copied) == tiny_model.weights_revision(built)
    assert (copied / "chat_template.jinja").read_text(encoding="utf-8") == tiny_model.CHAT_TEMPLATE