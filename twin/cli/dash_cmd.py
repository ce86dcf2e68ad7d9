"""`twin dash`: start the live dashboard of a site on this machine."""

from __future__ import annotations

import errno
import socket

import typer

from twin.cli import app


def port_problem(host: str, port: int) -> str | None:
    """None when (host, port) can be bound now, else a sentence saying why not."""
    if not 0 < port < 65536:
        return f"port {port} is out of range; expected 1-65535"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc.strerror}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # Same option as the server will use, so a port in TIME_WAIT is not reported busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use; stop what runs there or pass --port with a free port"
            if exc.errno == errno.EACCES:
                return f"no permission to bind port {port} on {host}; use a port above 1023"
            return f"cannot bind {host}:{port}: {exc.strerror}"
    return None


@app.command("dash")
def dash(
    site: str = typer.Option("colossus-1", "--site", help="Site name in sites/ or a path to a site YAML"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: this machine only)"),
    port: int = typer.Option(8050, "--port", help="TCP port"),
    speed: float = typer.Option(60.0, "--speed", help="Twin seconds per real second (60 = one twin minute per second)"),
    replay: str = typer.Option(None, "--replay", help="Replay a stored run (run id) instead of running the engine live"),
    runs_dir: str = typer.Option(None, "--runs-dir", help="Run store folder (default: the store's default)"),
) -> None:
    """Open the live digital twin of a site in the browser."""
    from rich.console import Console

    err = Console(stderr=True)
    if not speed > 0:
        err.print(f"[bold red]error:[/] --speed must be positive, got {speed:g}")
        raise SystemExit(1)  # typer.Exit is swallowed by click in non-standalone mode (twin.cli.main)
    problem = port_problem(host, port)
    if problem:
        err.print(f"[bold red]error:[/] {problem}")
        raise SystemExit(1)  # typer.Exit is swallowed by click in non-standalone mode (twin.cli.main)

    from dashboards.app import create_app

    # An unknown or invalid site raises InputError: the CLI prints every problem and exits 1.
    web = create_app(site, speed=speed, replay=replay, runs_dir=runs_dir)
    out = Console()
    out.print(f"gigatwin dashboard for [bold]{site}[/] at [link]http://{host}:{port}/[/link] "
              f"(twin time x{speed:g}; Ctrl+C stops)")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    web.run(host=host, port=port, debug=False, dev_tools_ui=False, dev_tools_props_check=False)
