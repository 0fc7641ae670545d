"""`adapterops config-fields`: every config field with its default and description."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from adapterops.config import field_docs

out = Console()


def config_fields() -> None:
    """Every config field with its default and description."""
    table = Table("field", "default", "description")
    for row in field_docs():
        table.add_row(*row)
    out.print(table)
