"""Domain errors. Raised deep in the stack; ``app.api.errors`` maps them to HTTP once."""

from __future__ import annotations


class TextserveError(Exception):
    """Base of every error the service turns into a structured HTTP answer."""

    code = "internal_error"
    # The request field at fault, when one is (the error answer's `param`).
    param: str | None = None


class ModelNotFound(TextserveError):
    """No such model name, or no such version of it."""

    code = "model_not_found"


class WrongModelTask(TextserveError):
    """The named model exists but does another task (a classifier named for embeddings)."""

    code = "invalid_model"
    param = "model"


class ModelNotReady(TextserveError):
    """The model exists but is not loaded yet (or failed to load)."""

    code = "model_not_ready"


class CorruptModel(TextserveError):
    """A model version on disk failed verification (checksum, missing file, bad manifest)."""

    code = "corrupt_model"


class InvalidModelName(TextserveError):
    """A model name or version that could escape the store or is malformed."""

    code = "invalid_model_name"


class Overloaded(TextserveError):
    """The queue is full; the caller should retry after a pause."""

    code = "overloaded"


class DeadlineExceeded(TextserveError):
    """The request's deadline passed before the model could run it."""

    code = "deadline_exceeded"


class ShuttingDown(TextserveError):
    """The service is draining and takes no new work."""

    code = "shutting_down"


class InferenceFailed(TextserveError):
    """The inference session raised while running a batch."""

    code = "inference_failed"


class FileNotFound(TextserveError):
    """No uploaded data set with that id; ``param``: the request field that gave it, if known."""

    code = "file_not_found"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class JobNotFound(TextserveError):
    """No fine-tune job with that id; ``param``: the request field that gave it, if known."""

    code = "job_not_found"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class Conflict(TextserveError):
    """The resource is not in a state that allows the operation (cancel a finished job...)."""

    code = "conflict"


class UnusableVersion(Conflict):
    """A version asked to become active (promote, rollback) whose files fail verification.

    The caller named a version the store cannot serve: refused (409, ``param`` "version")
    before the active pointer moves, so the version active before keeps serving. Its code is
    the same as ``CorruptModel``'s: that is what is wrong with the version.
    """

    code = CorruptModel.code
    param = "version"


class PayloadTooLarge(TextserveError):
    """An upload exceeds its size limit."""

    code = "payload_too_large"


class TaskNotAvailable(TextserveError):
    """A fine-tune task this installation cannot train (yet)."""

    code = "task_not_available"


class Unauthorized(TextserveError):
    """No API key, or one that matches no configured key."""

    code = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        # RFC 6750: tell the client which scheme to use.
        return {"WWW-Authenticate": 'Bearer realm="textserve"'}


class Forbidden(TextserveError):
    """A valid API key without the scope the route needs."""

    code = "forbidden"


class RateLimited(TextserveError):
    """The key has used up its requests or texts per second; ``headers`` say when to retry."""

    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


class SharedStateUnavailable(TextserveError):
    """The state replicas share (Redis) cannot be reached; callers fall back where they can."""

    code = "shared_state_unavailable"


class ConversationNotFound(TextserveError):
    """No kept conversation with that id for this API key (or it expired)."""

    code = "conversation_not_found"
    param = "conversation_id"


class JobStoreUnavailable(TextserveError):
    """The jobs database (files, fine-tune jobs) cannot be reached; serving is unaffected."""

    code = "job_store_unavailable"
