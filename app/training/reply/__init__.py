"""The reply model: a dual encoder with an intent head, trained on (utterance -> reply) pairs.

Task ``reply``: ``checks`` refuses unfit uploads, ``pipeline.build_reply_model`` trains,
evaluates, exports and publishes (for bootstrap through ``ReplyRecipe`` too), and ``job``
is the fine-tune job entry (``TASK``, listed in ``app.training.tasks``). Torch is imported
only inside the functions that train.
"""

from app.training.reply.job import train_reply_job
from app.training.reply.pipeline import DEFAULT_LOW_CONFIDENCE, TASK, build_reply_model
from app.training.reply.recipe import ReplyRecipe, is_reply_recipe

__all__ = [
    "DEFAULT_LOW_CONFIDENCE",
    "TASK",
    "ReplyRecipe",
    "build_reply_model",
    "is_reply_recipe",
    "train_reply_job",
]
