"""The reply model: a dual encoder with an intent head, trained on (utterance -> reply) pairs.

``build_reply_model`` is the entry point for the fine-tune job API (task ``reply``) and for
bootstrap (through ``ReplyRecipe``). Torch is imported only inside the functions that train.
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
