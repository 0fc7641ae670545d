"""The small ones: `adapterops --version`; `status` lists every pipeline when no --name is given; times as times."""

from importlib.metadata import version

from typer.testing import CliRunner

from cli.main import app


def test_version_prints_the_installed_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"adapterops {version('adapterops')}"


def test_status_without_a_name_lists_every_pipeline_and_with_one_only_that():
    from adapterops.tracking import ensure_experiment

    for pipeline in ("status-alpha", "status-beta"):
        ensure_experiment(f"{pipeline}/corpus")
    every = CliRunner().invoke(app, ["status"])
    assert every.exit_code == 0, every.output
    assert "Corpus versions of status-alpha" in every.output and "Corpus versions of status-beta" in every.output
    one = CliRunner().invoke(app, ["status", "--name", "status-beta"])
    assert "Corpus versions of status-beta" in one.output and "status-alpha" not in one.output


def test_created_is_a_time_not_a_folder_name():
    from cli.commands.corpus import shown_time

    assert shown_time(1_796_350_000_000) == "2026-12-04 02:06" and shown_time(None) == "-"
