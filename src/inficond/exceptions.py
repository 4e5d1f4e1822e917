"""Errors raised by InFiConD.

    InficondError
    ├── DataError                 dataset layout missing or malformed
    │   └── CorruptImageError     one image cannot be decoded
    ├── ArgumentError             a parameter out of its range (k, n_points, split, ...)
    ├── EncoderLoadError          an encoder's model or weights cannot be loaded
    ├── TeacherOutputError        NaN/inf logits, wrong shape, unknown image ids
    ├── UnknownNameError          unknown class, concept, encoder, teacher or solver
    ├── WorkspaceError            workspace missing, locked, or built with other settings
    │   └── WorkspaceMismatchError  encoder or corpus differs from the stored one
    └── TuningError               bad tuning instruction or provenance step
        └── VoteConflictError     a vote opposite to a standing earlier vote

Each message names the bad value and says what to pass instead.
"""

from __future__ import annotations

from difflib import get_close_matches


class InficondError(Exception):
    """Base class of every error InFiConD raises on purpose."""


class DataError(InficondError, ValueError):
    pass


class CorruptImageError(DataError):
    pass


class ArgumentError(InficondError, ValueError):
    """A parameter out of its range; the server answers 422 with the message (other ValueErrors
    are failures of ours and answer 500 with an error id)."""


class EncoderLoadError(InficondError, RuntimeError):
    pass


class TeacherOutputError(InficondError, ValueError):
    pass


class UnknownNameError(InficondError, KeyError):
    def __init__(self, kind: str, name: object, known: list[str] | tuple[str, ...] = ()):
        self.kind, self.name, self.known = kind, name, list(known)
        hint = ""
        if self.known:
            close = get_close_matches(str(name), [str(k) for k in self.known], n=3)
            shown = close or self.known[:10]
            more = "" if close or len(self.known) <= 10 else f" (and {len(self.known) - 10} more)"
            hint = f"; {'did you mean' if close else 'known'}: {', '.join(map(str, shown))}{more}"
        super().__init__(f"unknown {kind} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class WorkspaceError(InficondError):
    pass


class WorkspaceMismatchError(WorkspaceError):
    pass


class TuningError(InficondError, ValueError):
    pass


class VoteConflictError(TuningError):
    """A vote goes against an earlier, still standing vote on the same concept and class.

    ``conflicts`` lists ``{concept_idx, word, earlier, now}`` so a caller can offer to replace it.
    """

    def __init__(self, message: str, conflicts: list[dict] | None = None):
        super().__init__(message)
        self.conflicts = list(conflicts or [])
