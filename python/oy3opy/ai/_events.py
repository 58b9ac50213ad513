"""What a listener receives: the typed event payload."""

from __future__ import annotations

from typing import Any, Optional, TypedDict

__all__ = ["Event", "TASK_EVENTS", "FACE_EVENTS", "TOOL_EVENTS"]

#: Events of task lists and chains, on top of a model's own.
TASK_EVENTS = ("task_start", "task_done", "stage_start", "stage_done")

#: Events every face may add: the store's health, a retry on a fallback model.
FACE_EVENTS = ("store", "retry", "usage")

#: Events of a turn with tools: a call's fragments as they stream (``tool_call_delta``), the
#: whole call (``tool_call``: ``{'id', 'name', 'arguments'}``) and what the tool gave back
#: (``tool_result``: ``{'call_id', 'name', 'content', 'is_error', 'elapsed_ms'}``).
TOOL_EVENTS = ("tool_call_delta", "tool_call", "tool_result")


class _Always(TypedDict):
    event: str
    message: Any
    model: Optional[str]


class Event(_Always, total=False):
    """One event, as every listener gets it.

    - ``event``: its name (``'result'``, ``'error'``, ``'task_done'``, ...);
    - ``message``: what the event says (a dict for most events);
    - ``model``: the model reference that emitted it (``'openai:gpt-4o-mini'``), the same on
      every entry point; ``None`` only for events of no one model (a chain's stages);
    - ``task``: in task lists and chains, the task's position (0-based), and ``stage`` its
      stage in a chain.
    """

    task: int
    stage: Optional[int]
