"""Training library: what every task shares, and one folder per task.

Shared: data loading and splitting (``data``, ``datasets``), the base encoder
(``base_model``), hyperparameters and progress (``finetune``), the optimiser step
(``loop``), metrics (``evaluate``), ONNX export and parity (``export``), recipes and
bootstrap. Per task: ``classification/``, ``reply/``, each with its data checks, training,
evaluation and job entry, typed by the ``Task`` protocol (``task``) and listed in the
registry dict (``tasks``) the job service reads.

Torch and transformers are imported inside the functions that need them, so importing this
package (or ``app.cli``) stays cheap and the serving image never needs torch.
"""
