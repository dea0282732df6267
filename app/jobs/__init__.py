"""Fine-tune jobs: records and their store, the dispatcher, runners (local process, Ray),
the worker that trains in its own process, and the promotion rules."""
