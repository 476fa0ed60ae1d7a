"""The `weaver` command: serve, plugins, token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from weaver import __version__
from weaver.auth import mint_token
from weaver.bootstrap import ConfigurationError, build_host
from weaver.observability import (
    prepare_multiprocess_metrics,
    setup_error_tracking,
    setup_logging,
)
from weaver.settings import Settings

log = logging.getLogger("weaver")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="weaver", description=__doc__)
    parser.add_argument("--version", action="version", version=f"weaver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (default 1)"
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create a demo SQLite datasource for tenant 'demo' and print a token for it",
    )

    plugins = commands.add_parser("plugins", help="list known plugins and their status")
    plugins.add_argument("--check", action="store_true", help="also run their health checks")

    token = commands.add_parser("token", help="mint a development token (not in production)")
    token.add_argument("--tenant", required=True)
    token.add_argument("--sub", default="developer")
    token.add_argument("--roles", default="viewer", help="comma-separated: viewer,editor,admin")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")

    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValueError as error:
        print(f"weaver: invalid settings: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, json_lines=settings.is_production)
    setup_error_tracking(settings)
    try:
        if args.command == "serve":
            return _serve(settings, args.host, args.port, args.workers, args.demo)
        if args.command == "plugins":
            return asyncio.run(_plugins(settings, check=args.check))
        return _token(settings, args.tenant, args.sub, args.roles, args.ttl)
    except ConfigurationError as error:
        print(f"weaver: {error}", file=sys.stderr)
        return 2


def _token(settings: Settings, tenant: str, subject: str, roles: str, ttl: int) -> int:
    if settings.is_production:
        print("weaver: refusing to mint tokens in production", file=sys.stderr)
        return 2
    print(
        mint_token(
            settings,
            tenant_id=tenant,
            subject=subject,
            roles=[r.strip() for r in roles.split(",") if r.strip()],
            ttl_seconds=ttl,
        )
    )
    return 0


async def _plugins(settings: Settings, *, check: bool) -> int:
    host = build_host(settings)
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
        line = f"{name:<16} {info.version or '-':<10} {info.flag or '(built in)':<34} {status}"
        print(line + (f"  {detail}" if detail else ""))
    return 0


def _serve(settings: Settings, host: str, port: int, workers: int, demo: bool) -> int:
    # Fail fast, in the parent, on settings production refuses.
    build_host(settings)
    if demo:
        from weaver.demo import prepare_demo

        print(asyncio.run(prepare_demo(settings)), flush=True)
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

    settings = Settings()
    setup_logging(settings.log_level, json_lines=settings.is_production)
    setup_error_tracking(settings)
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        reuse_port=reuse_port or None,
        access_log=None,
        print=lambda text: log.info(text.strip()) if text.strip() else None,
        keepalive_timeout=75,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    raise SystemExit(main())
