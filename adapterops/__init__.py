"""AdapterOps: from a team's own records to a released LoRA adapter."""

__version__ = "0.1.0"
