"""`adapterops serve`: one process, the base model loaded once, registered adapters served over an OpenAI-compatible API."""

from pathlib import Path

import typer
from rich.console import Console

from cli.common import setup

out = Console(stderr=True)


def serve(name: list[str] = typer.Option(..., "--name", help="Registered model to serve (a config's release.model_name); repeat for several."),
          alias: list[str] = typer.Option(["production"], "--alias", help="Alias to serve, followed as it moves; repeat for several."),
          port: int = typer.Option(None, help="Port (default: serve.port)."),
          host: str = typer.Option(None, help="Address to listen on (default: serve.host)."),
          poll_seconds: float = typer.Option(None, help="Seconds between registry polls (default: serve.poll_seconds)."),
          config: Path = typer.Option(None, help="YAML config whose `serve` section sets the limits.")) -> None:
    """Serve NAME (production), NAME@ALIAS and NAME/VERSION at /v1/chat/completions and /v1/completions."""
    from adapterops.config import load_config, parse_config

    run_config = load_config(config) if config else parse_config({})
    overrides = {k: v for k, v in {"port": port, "host": host, "poll_seconds": poll_seconds}.items() if v is not None}
    settings = run_config.serve.model_copy(update=overrides)
    setup()
    import logging

    import uvicorn

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("adapterops.serve").setLevel(logging.INFO)

    from tasks.serve import build_server

    app, follower, batcher = build_server(list(dict.fromkeys(name)), list(dict.fromkeys(alias)), settings)
    served = ", ".join(m["id"] for m in follower.pool.listing())
    out.print(f"serving {served} on http://{settings.host}:{settings.port} (registry poll every {settings.poll_seconds:g} s)", highlight=False)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        follower.stop()
        batcher.stop()
