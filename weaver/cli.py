"""The `weaver` command: serve, plugins, token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import secrets
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import get_args

from weaver import __version__
from weaver.auth import mint_token
from weaver.bootstrap import ConfigurationError, build_host
from weaver.logs import setup_logging
from weaver.observability import prepare_multiprocess_metrics, setup_error_tracking
from weaver.plugins import ENTRY_POINT_GROUP
from weaver.settings import SEED_MODE_FLAGS, Settings, SettingsError
from weaver.types import Role

log = logging.getLogger("weaver")

ROLES: tuple[str, ...] = get_args(Role)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.reload and args.workers > 1:
        parser.error("--reload runs one worker; leave out --workers")
    try:
        settings = Settings.load()
    except SettingsError as error:
        for line in error.lines:
            print(f"weaver: {line}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, json_lines=settings.is_production)
    setup_error_tracking(settings)
    try:
        if args.command == "serve":
            if args.reload:
                return _serve_reloading(settings, args.host, args.port, args.demo)
            return _serve(settings, args.host, args.port, args.workers, args.demo)
        if args.command == "plugins":
            return asyncio.run(_plugins(settings, check=args.check))
        return _token(settings, args.tenant, args.sub, args.roles, args.ttl)
    except ConfigurationError as error:
        print(f"weaver: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weaver",
        description=__doc__,
        epilog="Settings come from the environment; see the README's settings table.",
    )
    parser.add_argument("--version", action="version", version=f"weaver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument(
        "--workers", type=_positive, default=1, help="worker processes sharing the port (default 1)"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create a demo SQLite datasource for tenant 'demo' and print a token for it",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart when a source file of weaver or of an installed plugin changes "
        "(development; needs watchfiles: pip install 'weaver-gateway[reload]')",
    )

    plugins = commands.add_parser("plugins", help="list known plugins and their status")
    plugins.add_argument("--check", action="store_true", help="also run their health checks")

    token = commands.add_parser("token", help="mint a development token (not in production)")
    token.add_argument("--tenant", required=True, help="the token's tenant_id claim")
    token.add_argument(
        "--sub", default="developer", help="the token's sub claim, the caller (default developer)"
    )
    token.add_argument(
        "--roles",
        type=_roles,
        default=["viewer"],
        help=f"comma-separated, from {', '.join(ROLES)} (default viewer)",
    )
    token.add_argument("--ttl", type=_positive, default=3600, help="seconds until it expires")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _roles(text: str) -> list[str]:
    roles = [role.strip() for role in text.split(",") if role.strip()]
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise argparse.ArgumentTypeError(
            f"unknown role {', '.join(map(repr, unknown)) or repr(text)}: "
            f"choose from {', '.join(ROLES)}"
        )
    return roles


def _token(settings: Settings, tenant: str, subject: str, roles: list[str], ttl: int) -> int:
    if settings.is_production:
        print("weaver: refusing to mint tokens in production", file=sys.stderr)
        return 2
    print(mint_token(settings, tenant_id=tenant, subject=subject, roles=roles, ttl_seconds=ttl))
    return 0


def install_hint(name: str) -> str | None:
    """How to install a first-party plugin from a checkout."""
    if name not in SEED_MODE_FLAGS:
        return None
    return f"install: pip install -e plugins/weaver_{name} (from a checkout)"


@contextmanager
def _inspection_settings(settings: Settings) -> Iterator[Settings]:
    """Settings for looking at the plugins without leaving files behind.

    Building a host creates the data directory, a development key and the embedded store;
    where the user merely stands in a directory that has none, that happens in a
    directory thrown away afterwards.
    """
    if settings.data_dir.exists():
        yield settings
        return
    with tempfile.TemporaryDirectory(prefix="weaver-plugins-") as scratch:
        # A key of its own too: nothing sealed with it outlives the directory.
        key = settings.encryption_key or secrets.token_urlsafe(32)
        yield settings.model_copy(update={"data_dir": Path(scratch), "encryption_key": key})


async def _plugins(
    settings: Settings, *, check: bool, discovered: Sequence[EntryPoint] | None = None
) -> int:
    discovered = list(entry_points(group=ENTRY_POINT_GROUP)) if discovered is None else discovered
    installed = {ep.name for ep in discovered}
    with _inspection_settings(settings) as inspected:
        host = build_host(inspected, discovered=discovered)
        checks = {}
        if check:
            await host.startup()
            try:
                checks = await host.check_health()
            finally:
                await host.shutdown()
    print(f"{'plugin':<16} {'version':<10} {'flag':<34} status")
    for name, info in host.plugins.items():
        status: str = info.load_status
        detail = info.detail
        if name in checks:
            status, detail = checks[name].status, checks[name].detail
        if not info.builtin and name not in installed:
            status = "not installed" if status == "disabled" else status
            detail = "; ".join(filter(None, [detail, install_hint(name)]))
        line = f"{name:<16} {info.version or '-':<10} {info.flag or '(built in)':<34} {status}"
        print(line + (f"  {detail}" if detail else ""))
    return 0


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def _announce(settings: Settings, host: str, port: int, demo: bool) -> None:
    """What a person starting the gateway needs: where it is, a token, how to stop it.

    Not in production, where the output is JSON lines for a collector and the workers'
    "serving on" line says where it is."""
    lines = [f"weaver {__version__} serving at {_url(host, port)}  (Ctrl+C stops it)"]
    if demo:
        from weaver.demo import prepare_demo

        lines += asyncio.run(prepare_demo(settings))
    if not settings.is_production:
        print("\n".join(lines), flush=True)


def _serve(settings: Settings, host: str, port: int, workers: int, demo: bool) -> int:
    # Fail fast, in the parent, on settings production refuses.
    build_host(settings)
    _announce(settings, host, port, demo)
    if workers <= 1:
        _run_worker(host, port, reuse_port=False)
        return 0
    # Several processes on one port (SO_REUSEPORT): the kernel spreads connections; all
    # shared state lives in the stores and the guard backend, never in a worker.
    prepare_multiprocess_metrics(settings.data_dir / "metrics")
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_run_worker, args=(host, port, True), name=f"weaver-worker-{i}")
        for i in range(workers)
    ]
    for child in children:
        child.start()

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()
    return max((child.exitcode or 0) for child in children)


def source_directories() -> list[Path]:
    """The directories a reloading gateway watches: the core package's and every
    installed plugin's, wherever they are imported from (a mounted checkout included)."""
    packages = {"weaver"} | {
        ep.module.partition(".")[0] for ep in entry_points(group=ENTRY_POINT_GROUP)
    }
    directories: list[Path] = []
    for package in sorted(packages):
        spec = find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            directories.extend(Path(p) for p in spec.submodule_search_locations)
    return directories


def _serve_reloading(settings: Settings, host: str, port: int, demo: bool) -> int:
    try:
        from watchfiles import run_process
    except ImportError:
        print(
            "weaver: --reload needs watchfiles: pip install 'weaver-gateway[reload]'",
            file=sys.stderr,
        )
        return 2
    build_host(settings)
    _announce(settings, host, port, demo)
    directories = source_directories()
    log.info("reloading on changes under %s", ", ".join(map(str, directories)))
    # watchfiles starts the worker in a fresh process and starts it again after each
    # change, so every restart imports the changed code.
    run_process(
        *directories,
        target=_run_worker,
        args=(host, port, False),
        callback=lambda changes: log.info("%d file(s) changed; restarting", len(changes)),
    )
    return 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop the gateway serves on: uvloop where it is installed (a dependency on
    Linux and macOS), whose loop and transports are compiled, so the same aiohttp code
    spends less time outside the gateway's own work; asyncio's own elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_worker(host: str, port: int, reuse_port: bool) -> None:
    from weaver.app import create_app
    from weaver.server import serve

    settings = Settings.load()
    setup_logging(settings.log_level, json_lines=settings.is_production)
    setup_error_tracking(settings)
    url = _url(host, port)
    serve(
        create_app(settings),
        host=host,
        port=port,
        reuse_port=reuse_port,
        keepalive_timeout=75,
        on_ready=lambda: log.info("serving on %s", url),
        loop_factory=new_event_loop,
    )


if __name__ == "__main__":
    raise SystemExit(main())
