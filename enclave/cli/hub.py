"""``enclave hub``: the researchers' workspaces (JupyterHub), the development OIDC provider, the demo.

``start`` runs the OIDC provider (unless the city's issuer is configured), JupyterHub and its
proxy in the foreground and stops them on Ctrl-C. ``oidc`` gives every person of the registry a
development sign-in. ``demo`` prepares the demo data and projects, then does both.
"""
from __future__ import annotations

import json
import secrets
import signal
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from enclave.cli.common import App, safe
from enclave.settings import Settings, get_settings

app = App()
out = Console()
err = Console(stderr=True)


def _logins_file(settings: Settings) -> Path:
    from hub_config import oidc

    return oidc.oidc_dir(settings) / "demo-logins.json"


def _registry_people(settings: Settings) -> list[tuple[str, str, str | None, list[str]]]:
    from sqlalchemy import select

    from enclave.registry.base import ensure_schema, session_scope
    from enclave.registry.models import Person

    url = ensure_schema(settings.registry_url)
    with session_scope(url, readonly=True) as session:
        people = session.scalars(select(Person).where(Person.active.is_(True)).order_by(Person.username)).all()
        return [(p.username, p.name, p.email, sorted(p.role_names)) for p in people]


def write_demo_accounts(settings: Settings) -> list[dict]:
    """One development sign-in per active person of the registry, with a fresh random password.

    The provider keeps only scrypt hashes; the clear passwords go to a root-only file so that
    ``enclave hub start`` can print them (development only: the city's provider has its own).
    """
    from hub_config import oidc

    people = _registry_people(settings)
    if not people:
        raise typer.BadParameter("the registry has no people yet: run `enclave hub demo` or `enclave board init` first")
    logins = [{"username": u, "password": secrets.token_urlsafe(9), "roles": roles} for u, _, _, roles in people]
    oidc.write_accounts(settings, [
        oidc.Account(u, login["password"], name=n, email=e or "", groups=roles)
        for (u, n, e, roles), login in zip(people, logins, strict=True)
    ])
    oidc.write_private(_logins_file(settings), json.dumps(logins, indent=1))
    return logins


def _print_logins(settings: Settings) -> None:
    path = _logins_file(settings)
    if not path.exists():
        return
    table = Table(title="Development sign-ins (local OIDC provider)")
    for column in ("username", "password", "roles"):
        table.add_column(column)
    for login in json.loads(path.read_text()):
        table.add_row(safe(login["username"]), safe(login["password"]), safe(", ".join(login["roles"])))
    out.print(table)


@app.command()
def oidc() -> None:
    """Give every active person of the registry a development sign-in and print them."""
    settings = get_settings()
    if settings.oidc_issuer:
        err.print(f"[red]an external OIDC issuer is configured ({safe(settings.oidc_issuer)}): sign-ins are managed there[/]")
        raise typer.Exit(1)
    write_demo_accounts(settings)
    out.print(f"accounts written to {_logins_file(settings).parent / 'accounts.json'}")
    _print_logins(settings)


def _run(settings: Settings) -> None:
    from hub_config import launcher
    from hub_config import oidc as oidc_files

    started = []
    try:
        if not settings.oidc_issuer:
            if not oidc_files.accounts_file(settings).exists():
                write_demo_accounts(settings)
            with out.status("starting the OIDC provider on loopback..."):
                started.append(launcher.start_oidc_provider(settings))
        with out.status("starting JupyterHub and its proxy..."):
            started.append(launcher.start_hub(settings))
        out.print(f"[bold green]Enclave workspaces at {oidc_files.public_url(settings)}/hub/[/]")
        out.print(f"[bold green]Enclave console at {oidc_files.public_url(settings)}/services/console/[/]")
        out.print(f"[bold green]Public findings (no sign-in) at {oidc_files.public_url(settings)}/services/console/catalogue/[/]")
        out.print(f"identity provider: {oidc_files.issuer(settings)}")
        if not settings.oidc_issuer:
            _print_logins(settings)
            out.print("CLI as a demo person (demo registries only): ENCLAVE_MODE=demo ENCLAVE_USER=alice enclave release list")
        out.print("Ctrl-C stops the hub, the proxy and the provider (running workspaces are stopped and recorded).")
        stopping = False

        def _stop(_signum, _frame) -> None:  # noqa: ANN001
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, _stop)
        while not stopping:
            for managed in started:
                if managed.process.poll() is not None:
                    err.print(f"[red]{safe(managed.name)} exited with {managed.process.returncode}[/]\n{safe(managed.log_tail(), lines=True)}")
                    raise typer.Exit(1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except launcher.LaunchError as error:
        err.print(f"[red]{safe(error)}[/]")
        raise typer.Exit(1) from None
    finally:
        for managed in reversed(started):
            managed.stop()


@app.command()
def start() -> None:
    """Run the OIDC provider, JupyterHub and the proxy in the foreground; print the URL and sign-ins."""
    _run(get_settings())


@app.command()
def demo() -> None:
    """Prepare the demo data and approved projects, give everyone a sign-in, then start the hub."""
    settings = get_settings()
    try:
        from enclave import demo as demo_data
    except ModuleNotFoundError as missing:
        if missing.name != "enclave.demo":
            raise
        err.print("[red]enclave.demo is not available in this build: cannot prepare the demo projects[/]")
        raise typer.Exit(1) from None
    with out.status("preparing demo data, projects and extracts..."):
        demo_data.prepare(settings)
    with out.status("answering the city's four questions and publishing the findings..."):
        from enclave import demo_findings

        demo_findings.publish_all(settings)
    write_demo_accounts(settings)
    _run(settings)
