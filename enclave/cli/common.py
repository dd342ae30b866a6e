"""What every ``enclave`` command group shares: who the caller is, one transaction per command,
terminal-safe output of stored text, validated ids, and refusals printed as one clear line with
a non-zero exit (never a traceback).

Identity: in production the CLI acts as the person the registry links to the operating-system
account running it (``Person.os_account``; root is nobody unless linked). ``ENCLAVE_USER`` is
honoured only when the settings' mode is demo or test *and* the registry itself was marked demo
or test (``people.mark_registry_mode``), so the variable can never impersonate anyone in a
production registry, whatever the caller puts in their environment.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import pwd
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.orm import Session

# Markup is ours only: stored text goes through ``safe``; emoji codes (":x:") are never expanded.
out = Console(emoji=False, highlight=False)
err = Console(stderr=True, emoji=False, highlight=False)

# Ids are SQL integers: anything outside 1..2**63-1 is refused by the parser with a clear message.
MAX_ID = 2**63 - 1
RecordId = Annotated[int, typer.Argument(min=1, max=MAX_ID, show_default=False)]


# ---------------------------------------------------------------- output
def _visible(char: str, lines: bool) -> str:
    # Control and format characters (ESC, CR, bidi overrides, ...) are shown as escapes, never sent.
    if char == "\n" and lines:
        return char
    if char == "\t":
        return " "
    if unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn"} or char in "\u2028\u2029":
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def plain(value: Any, lines: bool = False) -> str:
    """Stored text made terminal-safe: control and format characters (newlines too, unless ``lines``) shown as escapes."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(_visible(c, lines) for c in text)


def safe(value: Any, lines: bool = False) -> str:
    """Stored text made safe to print with rich: no control characters, no markup interpreted."""
    return escape(plain(value, lines))


def fail(message: str, code: int = 1) -> None:
    """Print one clear error line (the message is shown literally) and end the command."""
    err.print(f"[bold red]error:[/] {safe(message)}", soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[bold yellow]warning:[/] {safe(message)}", soft_wrap=True)


# ---------------------------------------------------------------- errors
def _known_errors() -> tuple[type[BaseException], ...]:
    from pydantic import ValidationError

    from enclave.airlock.errors import AirlockError
    from enclave.board.errors import GovernanceError
    from enclave.entitlements import Refused
    from enclave.provisioning import ProvisioningError

    return (GovernanceError, AirlockError, Refused, ProvisioningError, ValidationError, ValueError, OSError, PermissionError)


def _exit_code(error: BaseException) -> int:
    from enclave.airlock.errors import NotFound as AirlockNotFound
    from enclave.board.errors import NotFound

    return 2 if isinstance(error, (NotFound, AirlockNotFound)) else 1


@contextmanager
def refusals() -> Iterator[None]:
    """Turn every refusal or bad input into one error line and a non-zero exit; nothing else escapes either."""
    try:
        yield
    except (typer.Exit, typer.Abort, click.exceptions.ClickException, SystemExit):
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as error:  # noqa: BLE001 - no traceback reaches a user
        if isinstance(error, _known_errors()):
            fail(str(error), _exit_code(error))
        fail(f"internal error ({type(error).__name__}): {error}", 70)


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """A command whose refusals and unexpected errors end as one clear line, never a traceback."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with refusals():
            return command(*args, **kwargs)

    return wrapper


class App(typer.Typer):
    """A command group whose every command is ``guarded`` and which never prints a traceback."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("pretty_exceptions_enable", False)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)

        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            register(guarded(function))
            return function

        return decorator


# ---------------------------------------------------------------- identity
def os_account() -> str:
    """The operating-system account running this process (effective uid; root is ``root``)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid-{os.geteuid()}"


_resolved: tuple[object, str] | None = None  # (the settings object it was resolved under, username)


def caller() -> str:
    """The registry username this command acts as (see the module docstring); resolved once per settings."""
    global _resolved
    from enclave.settings import get_settings

    settings = get_settings()
    if _resolved is not None and _resolved[0] is settings:
        return _resolved[1]
    username = _from_environment(settings) if settings.user is not None else _from_os_account()
    _resolved = (settings, username)
    return username


def _from_environment(settings) -> str:
    from enclave import people

    if settings.mode == "production":
        fail("ENCLAVE_USER is honoured only in demo and test mode (ENCLAVE_MODE); in production the CLI acts as "
             f"the operating-system account running it ({os_account()}). Unset ENCLAVE_USER.")
    with transaction(readonly=True) as session:
        marked = people.registry_mode(session)
    if marked == "production":
        fail("ENCLAVE_USER refused: this registry is a production registry (never marked demo or test); "
             f"the CLI acts as the operating-system account running it ({os_account()})")
    warn(f"{settings.mode} mode: acting as {settings.user!r} from ENCLAVE_USER, not as account {os_account()}")
    return settings.user


def _from_os_account() -> str:
    from enclave import people

    account = os_account()
    with transaction(readonly=True) as session:
        person = people.person_for_os_account(session, account)
        username = person.username if person is not None else None
    if username is None:
        fail(f"operating-system account {account} is not linked to anyone in the registry; an admin links it with "
             f"`enclave people link-account <username> {account}`")
    return username


# ---------------------------------------------------------------- transactions and inputs
@contextmanager
def transaction(readonly: bool = False) -> Iterator[Session]:
    """One registry transaction for one command; governance refusals end the command cleanly."""
    from enclave.registry.base import ensure_schema, session_scope

    url = ensure_schema()
    with refusals(), session_scope(url, readonly=readonly) as session:
        yield session


def run(action: Callable[[Session], Any], readonly: bool = False) -> Any:
    with transaction(readonly) as session:
        return action(session)


def checked(make: Callable[[], Any]) -> Any:
    """Run a step outside any transaction (reading an input file) with the same clean refusals."""
    with refusals():
        return make()


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
