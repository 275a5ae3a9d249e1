"""``tracestore demo``: load the seeded demo traffic, analyse it, print where to look, serve."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import click

from analyzers.digest import week_of
from tracestore.cli.options import _settings, database_option
from tracestore.config import Settings
from tracestore.demo import DEMO_START, W47_START


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is loaded, so a taken port is a clear error
    up front (and nobody can take it while the demo loads)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror}): another program holds it; "
            "pick another with --port (nothing was loaded)") from None
    return sock


@click.command("demo")
@click.option("--serve/--no-serve", default=True, show_default=True,
              help="Start the server after loading (else print a summary and exit).")
@database_option
@click.option("--host", default=None, help="Interface to serve on (default: the host setting).")
@click.option("--port", type=int, default=None, help="Port to serve on (default: the port "
              "setting, 8000).")
@click.option("--seed", default=7, show_default=True, help="Seed of the demo data generator.")
@click.option("--traces", "n_traces", default=2000, show_default=True,
              help="How many traces to generate (two weeks of traffic either way).")
@click.option("--fixed-dates", is_flag=True, help="Keep the generator's own dates (ISO weeks "
              "2026-W46 and 2026-W47) instead of the last two complete weeks before today.")
@click.option("--dump", "dump_dir", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Write traces.jsonl.gz, outcomes.jsonl and labels.json into DIR "
                   "(for `tracestore ingest`) instead of loading.")
def demo(serve: bool, database_url: str | None, host: str | None, port: int | None, seed: int,
         n_traces: int, fixed_dates: bool, dump_dir: Path | None) -> None:
    """Load two weeks of seeded demo traffic (dated the last two complete weeks) into the
    store, analyse it, print the pages' address and the weeks that hold the data, then serve."""
    from tracestore.demo.run import demo_shift, dump_demo, run_demo

    if dump_dir is not None:
        for path in dump_demo(dump_dir, seed=seed, n=n_traces):
            click.echo(f"wrote {path}")
        return
    settings = _settings(database_url).model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    sock = _bind(settings.host, settings.port) if serve else None
    try:
        shift = 0.0 if fixed_dates else demo_shift(time.time())
        run_demo(settings, seed=seed, echo=click.echo, n=n_traces, shift=shift)
        from tracestore.cli.analysis import analyze_demo

        analyze_demo(settings, echo=click.echo)
        first, last = week_of(DEMO_START + shift), week_of(W47_START + shift)
        url = f"http://{settings.host}:{settings.port}"
        click.echo(f"the demo traffic is in ISO weeks {first} and {last} (the digest and the "
                   f"pages default to {last}): {url}/ ; digest: tracestore digest --week {last}")
        if sock is not None:
            _serve(settings, sock, url)
    finally:
        if sock is not None:
            sock.close()


def _serve(settings: Settings, sock: socket.socket, url: str) -> None:
    import uvicorn

    from tracestore.api import create_app

    click.echo(f"serving on {url}  (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    server.run(sockets=[sock])
