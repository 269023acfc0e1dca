"""The ``collect`` command: ``collect serve`` and the client verbs."""

from typing import Annotated

import typer

app = typer.Typer(help="Collect: long-running data jobs you can pause, resume or terminate.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="server processes")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the service (settings from COLLECT_* environment variables)."""
    import uvicorn

    uvicorn.run(
        "collect_api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=30,
    )


@app.command()
def version() -> None:
    """Print the version."""
    from collect_api import __version__

    typer.echo(__version__)


def main() -> None:
    app()
