"""`adapterops contract check FILE`: check contract files outside a flow."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from adapterops.escaping import terminal

app = typer.Typer(no_args_is_help=True, help="Data contracts: check a contract file.")
out = Console()
err = Console(stderr=True)


@app.command("check")
def check(files: list[Path] = typer.Argument(..., help="Contract YAML file(s), e.g. data_contracts/support_tickets.yaml.")) -> None:
    """Check contract files: schema, owners, expectation names and arguments, bounds, PII policy."""
    from adapterops.storage import read_yaml
    from tasks.records import Contract, contract_problems

    failed = False
    for path in files:
        data = read_yaml(path, f"Contract file {path} does not exist; pass the path of a YAML contract.")
        problems = contract_problems(data, path)
        for problem in problems:
            err.print(f"[bold red]error:[/] {terminal(problem)}", highlight=False, soft_wrap=True)
        if problems:
            failed = True
            continue
        contract = Contract.model_validate(data)
        out.print(f"ok: {path}: {contract.name} v{contract.version}, {len(contract.expectations)} expectations, "
                  f"owners {', '.join(contract.owners)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)
