"""The ``collect`` command: ``collect serve``, ``collect migrate`` and the client verbs.

The client verbs (``collect_api.client.commands``) talk to a service over HTTP; ``serve`` imports
the service itself only when it runs, so that the client starts fast.
"""

import ipaddress
from typing import Annotated

import typer

from collect_api.client.commands import client

app = typer.Typer(
    help="Collect: long-running data jobs you can pause, resume or terminate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
service = typer.Typer()
SERVICE = "Run the service"


@service.command(rich_help_panel=SERVICE)
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="server processes")] = 1,
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning or error", envvar="COLLECT_LOG_LEVEL")
    ] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            help="text for people, json for one JSON object a line", envvar="COLLECT_LOG_FORMAT"
        ),
    ] = "text",
) -> None:
    """Run the service (settings from COLLECT_* environment variables)."""
    import uvicorn

    from collect_api import logs
    from collect_api.access import Access, BadKeys
    from collect_api.settings import Settings

    if log_format not in logs.FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(logs.FORMATS)}", param_hint="--log-format")
    if log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise typer.BadParameter("use debug, info, warning or error", param_hint="--log-level")

    settings = Settings()
    try:
        access = Access.parse(settings.api_keys)
    except BadKeys as exc:
        raise typer.BadParameter(str(exc)) from None
    if access.open and not _is_loopback(host) and not settings.allow_open:
        typer.echo(
            f"Refusing to serve on {host} with no API keys: anyone who can reach it could "
            "read and change every job. Set COLLECT_API_KEYS=tenant:key,... or, to run open "
            "on purpose, COLLECT_ALLOW_OPEN=1.",
            err=True,
        )
        raise typer.Exit(2)

    uvicorn.run(
        "collect_api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
        log_config=logs.config(level=log_level.lower(), log_format=log_format),
        timeout_graceful_shutdown=30,
    )


@service.command(rich_help_panel=SERVICE)
def migrate(
    database_url: Annotated[
        str | None,
        typer.Option(help="the database (default: COLLECT_DATABASE_URL)", show_default=False),
    ] = None,
) -> None:
    """Bring the database's schema to the newest revision (the service also does as it starts)."""
    import asyncio

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from collect_api import migrations
    from collect_api.settings import Settings

    url = database_url or Settings().database_url
    try:
        shown = make_url(url).render_as_string(hide_password=True)
        migrations.backend(url)
    except ArgumentError:
        raise typer.BadParameter(
            f"not a database URL: {url!r}", param_hint="--database-url"
        ) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--database-url") from None
    try:
        migration = asyncio.run(migrations.upgrade(url))
    except (migrations.SchemaMismatch, SQLAlchemyError, OSError) as exc:
        # The driver's own message, without SQLAlchemy's wrapping of it.
        reason = getattr(exc, "orig", None) or exc
        typer.echo(f"Cannot migrate {shown}: {reason}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{shown}: {migration.describe()}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@service.command(rich_help_panel=SERVICE)
def version(
    as_json: Annotated[bool, typer.Option("--json", help='Print {"version": ...}.')] = False,
) -> None:
    """Print the version of this command."""
    import json

    from collect_api import __version__

    typer.echo(json.dumps({"version": __version__}) if as_json else __version__)


# The client's verbs first: they are what people type most.
app.add_typer(client)
app.add_typer(service)


def main() -> None:
    app()
