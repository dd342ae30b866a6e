"""Errors of governance actions, each with a message safe to show to the person who asked."""
from __future__ import annotations


class GovernanceError(Exception):
    """Base of every refusal by the board, projects or people services."""


class NotPermitted(GovernanceError):
    """The person may not take this action at all (a permission: who)."""


class NotAllowed(GovernanceError):
    """The action is not allowed in the current state (a policy: when)."""


class NotFound(GovernanceError):
    """A named person, project or application does not exist."""


class InvalidInput(GovernanceError):
    """An application, amendment or condition file is malformed; the message names the field."""
