"""Serving: the batching engine (engine, decoding, choices), the OpenAI-compatible app (app), API keys
(api_keys), metrics and the access log (metrics), the registry follower that
loads and swaps adapters (follower), the server as a subprocess (process), and the MLflow pyfunc
model with what it ships (pyfunc, base_location, packaging; the pyfunc is not imported here: it is
model code MLflow loads by path).

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.serve.api_keys import KeyRing, create_key, default_keys_file, read_keys_file, revoke_key
from tasks.serve.follower import build_server, registered_adapter
from tasks.serve.process import ServerProcess, free_port

__all__ = [
    "KeyRing", "ServerProcess", "build_server", "create_key", "default_keys_file", "free_port", "read_keys_file",
    "registered_adapter", "revoke_key",
]
