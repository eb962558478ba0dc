"""The error hierarchy: every error kitaru raises on purpose is a `KitaruError`.

Each message says what was wrong, where, and what to do about it; the command
line prints the message and exits non-zero without a traceback.
"""

from __future__ import annotations


class KitaruError(Exception):
    """Base class of every error kitaru raises on purpose."""

    exit_code: int = 1


class ConfigError(KitaruError):
    """A stack file, config value or setting is invalid."""

    exit_code = 2


class StackNotFoundError(ConfigError):
    """A stack name that is not registered."""


class StackExistsError(ConfigError):
    """`stack register` of a name that is already a stack (the built-in `local` included)."""


class StackBuildError(ConfigError):
    """A stack's component could not be built (its flavor's constructor failed)."""


class FlavorNotFoundError(ConfigError):
    """A stack names a flavor that no installed plugin provides."""


class UnknownModelError(ConfigError):
    """A model name that is neither a registered alias nor a `provider:name` model string,
    or no model was given and no default is set (`kitaru.llm`)."""


class ModelUnavailableError(ConfigError):
    """A model's provider package is not installed or its credentials are not set."""


class InvalidValueError(KitaruError, ValueError):
    """A value or id that cannot be taken: malformed JSON, nested too deeply, a number too
    long, an id too long, a count out of range (command line and client alike)."""


class InvalidPromptError(KitaruError, ValueError):
    """A prompt that is neither a string nor a list of chat messages (`kitaru.llm`)."""


class PluginError(KitaruError):
    """A plugin failed to load or registered something invalid."""


class ExecutionNotFoundError(KitaruError):
    """An execution id that the registry does not know."""


class ArtifactNotFoundError(KitaruError):
    """An artifact id or name that the registry does not know."""


class DeploymentNotFoundError(KitaruError):
    """A deployed flow, version or tag that the registry does not know."""


class MemoryNotFoundError(KitaruError):
    """A memory key, version or scope that holds nothing (`kitaru.memory`)."""


class SecretNotFoundError(KitaruError):
    """A secret (or a key of one) that no secret backend and no registry holds."""


class SecretKeyError(KitaruError):
    """The secrets key is missing, or is not the key a secret was sealed with."""


class RegistryDamagedError(KitaruError):
    """The registry's storage is damaged: not a database, truncated or malformed.

    Never shown as an empty history: the message names the file and the fix.
    """


class ArtifactDamagedError(KitaruError):
    """An artifact's stored bytes are not what its record describes (cut short, altered)."""


class StorageError(KitaruError):
    """The kitaru home (the registry or the artifact store) cannot be written: it is
    read-only, or its disk is full."""


class ExecutionOwnedError(KitaruError):
    """Another live runner owns (holds the lease of) this execution."""


class InvalidStateError(KitaruError):
    """The execution is not in a state that allows the operation."""


class DocumentConflictError(InvalidStateError):
    """A compare-and-set write of a registry document lost: it was changed (or created) first."""

    @classmethod
    def of(cls, kind: str, name: str, expected: int, found: int) -> DocumentConflictError:
        """The error for a write that expected version `expected` and found `found` (0: none)."""
        now = "does not exist" if found == 0 else f"is at version {found}"
        return cls(f"{kind} {name!r} {now}, not version {expected}: it was changed meanwhile; "
                   "read it again and retry")


class FlowInputError(KitaruError, TypeError):
    """`flow.run(...)` was given arguments the flow's parameters don't take."""


class ContextError(KitaruError):
    """A kitaru primitive was used where it is not allowed (e.g. `wait()` in a checkpoint)."""


class SerializationError(KitaruError):
    """A value could not be turned into an artifact, or read back from one."""


class WaitInputError(KitaruError):
    """A wait input does not match the wait's schema, or names no pending wait."""


class WaitAbortedError(KitaruError):
    """Raised by `wait()` in the flow body when its wait was aborted instead of answered
    (`KitaruClient().executions.abort_wait`); a flow may catch it and go on without the input."""


class KitaruDivergenceError(KitaruError):
    """The flow now calls checkpoints in a different order than the record shows."""


class CheckpointFailedError(KitaruError):
    """A checkpoint raised after all of its retries."""

    def __init__(self, message: str, *, call_id: str | None = None) -> None:
        super().__init__(message)
        self.call_id = call_id


class FlowFailedError(KitaruError):
    """An execution ended `failed`; raised by `FlowHandle.wait()`."""

    def __init__(self, message: str, *, exec_id: str, failure: dict | None = None) -> None:
        super().__init__(message)
        self.exec_id = exec_id
        self.failure = failure or {}


class ExecutionCancelledError(KitaruError):
    """The execution was cancelled."""


class WaitTimeoutError(KitaruError):
    """`FlowHandle.wait(timeout=...)` gave up before the execution finished."""


class TaskError(KitaruError):
    """An isolated checkpoint's task could not be submitted, run or read back."""


class CodeMismatchError(KitaruError):
    """The code baked into a task's image is not the runner's (`code: {source: image}`)."""


class ResumeFailedError(KitaruError):
    """A resume launched in the background could not continue the execution."""


class RunnerLostError(KitaruError):
    """A launched runner was lost (or never started) more often than the watchdog relaunches
    it; the execution is marked failed with this as its failure."""


class ArtifactStoreError(KitaruError):
    """The artifact store's backend refused or failed an operation (a missing bucket, no access)."""


class ResourceError(ConfigError):
    """An execution target cannot provide the resources, image or options a task asks for."""


class ResumeWarning(UserWarning):
    """A run that no other process will be able to resume (its flow can't be imported)."""
