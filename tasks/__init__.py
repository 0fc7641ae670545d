"""The pipeline's stages, one package each; a stage's `__init__` is its face (docs/architecture.md)."""
