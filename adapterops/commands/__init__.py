"""Command groups of the `adapterops` CLI, one module per area, registered in adapterops/cli.py."""


def setup() -> None:
    """The CLI's prepare() (workspace, tracking URI); imported late, since adapterops/cli.py imports these modules."""
    from adapterops.cli import prepare

    prepare()
