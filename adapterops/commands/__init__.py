"""Command groups of the `adapterops` CLI, one module per area, registered in adapterops/cli.py."""
