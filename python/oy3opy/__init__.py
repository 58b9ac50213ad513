"""oy3opy: AI chat, one-shot prompts and task chains, powered by the oy3o Rust engine.

The AI API lives in :mod:`oy3opy.ai`; small helpers in :mod:`oy3opy.utils`.
"""

__all__ = ["ai", "utils"]
