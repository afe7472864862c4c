"""Landauer LLM engine: model, data, training, checkpoints and generation.

Plain Python + torch (no Qt), so scripts, notebooks, the CLI and the desktop
studio all drive the same code.
"""

__version__ = "0.1.0"
