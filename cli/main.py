"""The `adapterops` command line; user errors print one line and exit non-zero."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from adapterops.errors import AdapterOpsError
from adapterops.escaping import terminal
from adapterops.storage import disk_full_error, is_disk_full
from adapterops.workspace import resolve_workspace
from cli.commands import get_commands

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="AdapterOps: curate, approve, train, evaluate and release LoRA adapters.")
console = Console(stderr=True)

def _version(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("adapterops")
        except PackageNotFoundError:      # run from a source tree that was never installed
            number = "unknown (not installed)"
        typer.echo(f"adapterops {number}")
        raise typer.Exit()


@app.callback()
def _options(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                               help="Print the installed adapterops version and exit.")) -> None:
    """AdapterOps: curate, approve, train, evaluate and release LoRA adapters."""


for name, command in get_commands():
    if isinstance(command, typer.Typer):
        app.add_typer(command, name=name)
    else:
        app.command(name)(command)


def main() -> None:
    try:
        app()
    except AdapterOpsError as error:
        console.print(f"[bold red]error:[/] {terminal(error)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as error:       # a full disk or a registry fault where no step expected one: one line too
        if is_disk_full(error):
            error = disk_full_error(getattr(error, "filename", None) or resolve_workspace().root)
        elif _is_mlflow_error(error):
            from tasks.release import registry_failure

            error = registry_failure(error, "running this command")
        else:
            raise
        console.print(f"[bold red]error:[/] {terminal(error)}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _is_mlflow_error(error: Exception) -> bool:
    exceptions = sys.modules.get("mlflow.exceptions")      # loaded by any command that reached MLflow
    return exceptions is not None and isinstance(error, exceptions.MlflowException)


if __name__ == "__main__":
    main()
