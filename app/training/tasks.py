"""Every task a fine-tune job can train, by the name a job gives (``"task"`` in the request).

This dict is the one place the job service learns tasks from: a new task is a folder under
``app/training/`` whose job module defines an object with the ``Task`` shape, plus one line
here. Each value's module must import cheaply (see ``app.training.task``).
"""

from __future__ import annotations

from app.errors import TaskNotAvailable
from app.training.classification.job import TASK as CLASSIFICATION
from app.training.reply.job import TASK as REPLY
from app.training.task import Task

TASKS: dict[str, Task] = {
    "classification": CLASSIFICATION,
    "reply": REPLY,
}


def task_named(name: str) -> Task:
    """The task called ``name``; ``TaskNotAvailable`` (422) when no task has that name."""
    task = TASKS.get(name)
    if task is None:
        raise TaskNotAvailable(
            f"task {name!r} is not available in this installation; tasks: {', '.join(TASKS)}"
        )
    return task
