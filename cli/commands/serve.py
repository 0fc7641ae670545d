"""`adapterops serve`: one process, the base model loaded once, registered adapters served over an OpenAI-compatible API."""

import ipaddress
import os
import signal
from pathlib import Path

import typer
from rich.console import Console

from cli.common import setup

out = Console(stderr=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(name: list[str] = typer.Option(..., "--name", help="Pipeline (the config's `name`) or registered model (its release.model_name) to serve; repeat for several."),
          alias: list[str] = typer.Option(["production"], "--alias", help="Alias to serve, followed as it moves; repeat for several."),
          port: int = typer.Option(None, help="Port (default: serve.port)."),
          host: str = typer.Option(None, help="Address to listen on (default: serve.host, 127.0.0.1)."),
          poll_seconds: float = typer.Option(None, help="Seconds between registry polls (default: serve.poll_seconds)."),
          allow_no_keys: bool = typer.Option(False, "--allow-no-keys", help="Listen on a non-loopback address although no API key is configured."),
          config: Path = typer.Option(None, help="YAML config whose `serve` section sets the limits.")) -> None:
    """Serve NAME (production), NAME@ALIAS and NAME/VERSION at /v1/chat/completions and /v1/completions.

    Any version or alias of the named models loads on its first request (at most serve.max_loaded attached).
    SIGTERM or Ctrl-C stops accepting, lets requests in flight finish (serve.grace_seconds) and exits 0.
    """
    from adapterops.config import load_config, parse_config
    from adapterops.errors import AdapterOpsError

    run_config = load_config(config) if config else parse_config({})
    overrides = {k: v for k, v in {"port": port, "host": host, "poll_seconds": poll_seconds}.items() if v is not None}
    settings = run_config.serve.model_copy(update=overrides)
    setup()
    import logging

    import uvicorn

    from tasks.serve import KeyRing, build_server, default_keys_file

    keys = KeyRing(os.environ.get("ADAPTEROPS_API_KEYS"),
                   Path(settings.api_keys_file) if settings.api_keys_file else default_keys_file())
    if not keys.enabled and not _loopback(settings.host):
        if not allow_no_keys:
            raise AdapterOpsError(f"Refusing to listen on {settings.host} without API keys: anyone who reaches the "
                                  "port could call every adapter. Make a key (`adapterops keys api create --name APP`) "
                                  "or set ADAPTEROPS_API_KEYS, or pass --allow-no-keys to serve without them.")
        out.print(f"warning: listening on {settings.host} with no API key: anyone who reaches the port can call "
                  "every adapter", style="yellow", highlight=False)

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("adapterops.serve").setLevel(logging.INFO)

    app, follower, batcher = build_server(list(dict.fromkeys(name)), list(dict.fromkeys(alias)), settings, keys=keys,
                                          progress=lambda text: out.print(f"start-up: {text}", highlight=False,
                                                                          markup=False))
    served = ", ".join(m["id"] for m in follower.pool.listing())
    guarded = "API keys required" if keys.enabled else "no API keys"
    out.print(f"serving {served} on http://{settings.host}:{settings.port} ({guarded}; registry poll every "
              f"{settings.poll_seconds:g} s; at most {settings.max_loaded} adapters attached)", highlight=False,
              markup=False)
    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):   # /health/ready says 503 while requests in flight finish
            app.state.draining = True
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                                           timeout_graceful_shutdown=settings.grace_seconds or None))
    stopping = {"signal": None}

    def remember(sig, _frame):   # uvicorn re-raises the signal it handled once it has stopped: end with 0 instead
        stopping["signal"] = sig

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, remember)
    try:
        server.run()
    finally:
        app.state.draining = True
        follower.stop()
        batcher.stop()
    if stopping["signal"] is not None:
        out.print(f"stopped on {signal.Signals(stopping['signal']).name}: requests in flight finished", highlight=False)
