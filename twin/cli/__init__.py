"""The `twin` command line: one Typer app, one sub-app per area (site, simulate/runs/whatif, optimize, dash)."""

from __future__ import annotations

import sys

import typer

from twin.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="gigatwin: digital twin of AI gigafactories")

# Each area registers its commands on `app` in its own module (imported for the side effect).
import twin.cli.dash_cmd  # noqa: E402,F401
import twin.cli.opt_cmd  # noqa: E402,F401
import twin.cli.report_cmd  # noqa: E402,F401
import twin.cli.sim_cmd  # noqa: E402,F401
import twin.cli.site_cmd  # noqa: E402,F401


def main() -> None:
    """Console entry point: bad input prints every problem and exits 1, never a traceback."""
    try:
        rc = app(standalone_mode=False)
    except InputError as exc:
        from rich.console import Console

        err = Console(stderr=True)
        err.print("[bold red]error:[/] invalid input")
        for p in exc.problems:
            err.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)  # one problem per line, for grep
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:
        # Usage errors of the click that typer bundles arrive here in non-standalone mode.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(rc, int) and rc:
        sys.exit(rc)
