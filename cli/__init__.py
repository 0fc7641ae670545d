"""The `adapterops` command line: `cli.main` is the console script, `cli/commands/` one module per command."""
