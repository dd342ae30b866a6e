"""Errors of the airlock and of provisioning, and ``require`` which turns a refused rule into one."""
from __future__ import annotations

from collections.abc import Callable


class AirlockError(Exception):
    """Base of every refusal or failure in the airlock; the message is safe to show (no data values)."""


class Refused(AirlockError):
    """A permission or policy rule refused the action."""

    def __init__(self, rule: str, reason: str):
        super().__init__(f"refused ({rule}): {reason}")
        self.rule = rule
        self.reason = reason


class UnsafeFile(AirlockError):
    """A file in the outputs folder is not a plain regular file inside that folder."""


class NotFound(AirlockError):
    """The named request, project or file does not exist."""


def require(rule: Callable[..., bool], *args) -> None:
    """Raise ``Refused`` naming ``rule`` (its docstring is the reason) unless ``rule(*args)`` holds."""
    if not rule(*args):
        raise Refused(rule.__name__, (rule.__doc__ or rule.__name__).strip().splitlines()[0])


class TamperDetected(Refused):
    """An airlock snapshot no longer matches the checksums recorded at submission."""

    def __init__(self, request_id: int, project: str, problems: list[str]):
        super().__init__("snapshot_is_intact", "the airlock snapshot no longer matches its checksums: " + "; ".join(problems))
        self.request_id = request_id
        self.project = project
        self.problems = problems
