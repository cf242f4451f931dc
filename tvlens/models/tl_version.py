"""Which TransformerLens line is installed: 3.x (``HookedTransformer``) or 4.x (``TransformerBridge``)."""

from __future__ import annotations

import importlib.metadata


def transformer_lens_line() -> int:
    """Major version of the installed TransformerLens (3 or 4)."""
    return int(importlib.metadata.version("transformer-lens").split(".")[0])


__all__ = ["transformer_lens_line"]
