"""The engine's error tree.

Everything the engine raises on purpose derives from :class:`BatonError`. Vendor errors
(llama-cpp-python, openai) are translated where those libraries are called, in
``core/backends/``; callers never see a vendor exception.

    BatonError
    ├── ConfigError            settings or policy file wrong (names the key and the expected form)
    ├── UnknownNameError       a registry lookup failed (task kind, backend, ...)
    ├── InputError             the task itself is unusable (empty contact, prompt over context)
    │   ├── ConsentError           the contact opted out of what the task would write
    │   └── LanguageError          no brand voice (wording, examples) for the task's language
    ├── ModelFileError         model file missing, unreadable or with the wrong sha256
    ├── RoutingError           the policy allows no backend for this task right now
    ├── BackendError           a backend call failed
    │   ├── DoesNotFitError         prompt + answer over this model's context: falls back, no breaker
    │   ├── TransientBackendError   worth retrying (429 rate limit, 5xx, timeout, connection)
    │   └── QuotaExhaustedError     429 insufficient_quota and other billing stops: never retried
    ├── GenerationError        output failed validation after the repair attempt
    └── InternalError          an unexpected exception (a bug), told without its message
"""

from __future__ import annotations


class BatonError(Exception):
    """Base class of every error Baton raises on purpose; ``str()`` is one user-facing line."""


class ConfigError(BatonError):
    """A setting or policy value is wrong; the message names the key and the expected form."""


class UnknownNameError(BatonError):
    """A name was looked up in a registry that does not hold it."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(sorted(known)) or 'none'}")


class InputError(BatonError):
    """The task cannot be run as given (empty contact, prompt larger than the context, ...)."""


class ConsentError(InputError):
    """The contact opted out (of marketing email): nothing is generated or written for them."""


class NotApproved(InputError):
    """A held draft was not approved: a reviewer discarded it, it expired, or its record changed
    (deleted, opted out) before the approval. ``code`` is what a platform's workflow branches on
    (``discarded``, ``expired``, ``stale``)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        super().__init__(reason)


class LanguageError(InputError):
    """The task's language has no brand voice (wording and examples) in Baton."""


class ModelFileError(BatonError):
    """The model file is missing, unreadable, or its sha256 does not match."""


class RoutingError(BatonError):
    """No backend may run this task under the policy (budget spent, backend down, no fallback)."""


class BackendError(BatonError):
    """A model backend failed to produce a completion."""

    def __init__(self, message: str, *, backend: str = "", status: int | None = None) -> None:
        self.backend, self.status = backend, status
        super().__init__(message)


class DoesNotFitError(BackendError):
    """The prompt and its answer do not fit this model's context: another model may take the
    task (a fallback), and the model itself is not at fault (its circuit breaker ignores it)."""


class TransientBackendError(BackendError):
    """A failure that may pass: rate limit, server error, timeout, connection trouble."""


class QuotaExhaustedError(BackendError):
    """The account is out of quota or credit: retrying cannot help."""


class GenerationError(BatonError):
    """The output failed its schema or guards, also after the repair attempt."""

    def __init__(self, message: str, *, violations: list[str] | None = None) -> None:
        self.violations = violations or []
        super().__init__(message)


class InternalError(BatonError):
    """An unexpected exception in one task, told by its type and place only: an exception's
    message can hold customer data (``KeyError('İstanbul')``), so it never reaches a log line,
    a job's error or a receipt."""

    def __init__(self, exc: BaseException) -> None:
        self.cause_type = type(exc).__name__
        super().__init__(f"internal error ({describe_unexpected(exc)})")


def describe_unexpected(exc: BaseException) -> str:
    """An exception's type and the innermost place it was raised, without its message."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{where}"
