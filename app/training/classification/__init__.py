"""Task ``classification``: one label per text.

``checks`` refuses unfit uploads, ``train`` is the torch loop, ``pipeline`` trains,
evaluates, exports, checks parity and publishes, ``compare`` scores the active version on
the same rows, and ``job`` is the fine-tune job entry (``TASK``, listed in
``app.training.tasks``). Torch is imported only inside the functions that train.
"""
