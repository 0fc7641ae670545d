"""The `adapterops` command line; user errors print one line and exit non-zero."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from adapterops.children import die_with_parent
from adapterops.error_log import details, log_traceback
from adapterops.errors import AdapterOpsError
from adapterops.interrupts import Interrupted, at_step, current_step, exit_code, handle_termination
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
    die_with_parent()    # a child of a step (the staging server) ends when that step's process ends
    handle_termination()   # SIGTERM unwinds like Ctrl-C: children stopped, Prefect runs marked, one line
    at_step(next((a for a in sys.argv[1:] if not a.startswith("-")), "start"))
    try:
        app()
    except AdapterOpsError as error:
        _error_line(error)
    except (KeyboardInterrupt, Interrupted) as error:
        _interrupted(error)
    except Exception as error:       # a full disk or a store fault where no step expected one: one line too
        _error_line(_one_line(error) or _bug(error), log_traceback(error))
    except BaseException as error:   # Prefect's TerminationSignal, when it reaches us instead of our handler
        if type(error).__name__ != "TerminationSignal":
            raise
        _interrupted(error)


def _error_line(error, logged=False) -> None:
    tail = details(logged) if logged is not False else ""
    console.print(f"[bold red]error:[/] {terminal(error)}{terminal(tail)}", highlight=False, soft_wrap=True)
    sys.exit(1)


def _interrupted(error: BaseException) -> None:
    log_traceback(error, f"interrupted at {current_step()}")
    console.print(f"[bold yellow]interrupted[/] at {terminal(current_step())}; `adapterops run` resumes",
                  highlight=False, soft_wrap=True)
    sys.exit(exit_code(error))


def _one_line(error: Exception) -> AdapterOpsError | None:
    """The one line for a fault no step turned into one: a full disk, an unreachable tracking server."""
    if is_disk_full(error):
        return disk_full_error(_full_path(error) or resolve_workspace().root)
    if _workspace_disk_full():   # e.g. Prefect's API answering 500 because its database cannot grow
        return disk_full_error(resolve_workspace().root)
    if _is_mlflow_error(error) or _is_connection_error(error):
        from tasks.release import registry_failure

        return AdapterOpsError(f"{registry_failure(error, f'running {current_step()}')} What earlier steps recorded is "
                               "kept; an MLflow run left open is marked KILLED by the next `adapterops run`, which "
                               "continues from the first step not done.")
    return None


def _bug(error: Exception) -> AdapterOpsError:
    return AdapterOpsError(f"{type(error).__name__} at {current_step()}: {str(error).splitlines()[0][:300] if str(error) else ''}"
                           "; this is a bug: please report it with the traceback. `adapterops run` resumes from the "
                           "step that stopped.")


def _workspace_disk_full() -> bool:
    import shutil

    try:
        return shutil.disk_usage(resolve_workspace().root).free < 1 << 20
    except OSError:
        return False


def _full_path(error: BaseException | None):
    while error is not None:
        if getattr(error, "filename", None):
            return error.filename
        error = error.__cause__ or error.__context__
    return None


def _is_mlflow_error(error: Exception) -> bool:
    exceptions = sys.modules.get("mlflow.exceptions")      # loaded by any command that reached MLflow
    return exceptions is not None and isinstance(error, exceptions.MlflowException)


def _is_connection_error(error: BaseException | None) -> bool:
    """requests'/urllib3's/httpx's "could not connect" anywhere in the chain (a stopped tracking server)."""
    while error is not None:
        if isinstance(error, ConnectionError) or type(error).__name__ in ("ConnectionError", "ConnectError",
                                                                          "MaxRetryError", "NewConnectionError"):
            return True
        error = error.__cause__ or error.__context__
    return False


if __name__ == "__main__":
    main()
