"""What the governance CLI groups share: the caller's identity, one transaction per command,
and refusals printed as one clear line with a non-zero exit."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from enclave.board.errors import GovernanceError, NotFound
from enclave.registry.base import ensure_schema, session_scope

out = Console()
err = Console(stderr=True)


def caller() -> str:
    """The CLI caller's username, from ENCLAVE_USER (through the settings)."""
    from enclave.settings import get_settings

    user = get_settings().user
    if not user:
        fail("no caller identity: set ENCLAVE_USER to your registry username")
    return user


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def transaction(readonly: bool = False) -> Iterator[Session]:
    """One registry transaction for one command; governance refusals end the command cleanly."""
    from enclave.entitlements import Refused

    url = ensure_schema()
    try:
        with session_scope(url, readonly=readonly) as session:
            yield session
    except NotFound as error:
        fail(str(error), code=2)
    except (GovernanceError, Refused) as error:
        fail(str(error))


def run(action: Callable[[Session], Any], readonly: bool = False) -> Any:
    with transaction(readonly) as session:
        return action(session)


def parse_moment(text: str | None, end_of_day: bool = False) -> dt.datetime | None:
    """An ISO date or date-time from the command line, as UTC (a bare date means its start or end)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time.max if end_of_day else dt.time.min)
        else:
            moment = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not an ISO date (YYYY-MM-DD) or date-time")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def checked(make: Callable[[], Any]) -> Any:
    """Run a step outside any transaction (reading an input file) with the same clean refusals."""
    try:
        return make()
    except GovernanceError as error:
        fail(str(error))
