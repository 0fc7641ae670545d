"""Serving: the batching engine (engine), the OpenAI-compatible app (app), the registry follower that
loads and swaps adapters (follower), the server as a subprocess (process), and the MLflow pyfunc
model with what it ships (pyfunc, base_location, packaging; the pyfunc is not imported here: it is
model code MLflow loads by path).

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.serve.follower import build_server, registered_adapter
from tasks.serve.process import ServerProcess, free_port

__all__ = [
    "ServerProcess", "build_server", "free_port", "registered_adapter",
]
