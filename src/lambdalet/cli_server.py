"""The server side of the ``lambdalet`` command line: the options of ``serve`` / ``worker``
and ``doctor``, and the one place that turns them (and the LAMBDALET_* credentials in the
environment) into a frozen ``ServerConfig``.  ``cli.py`` wires the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from lambdalet.cluster import cli_args as cluster_cli
from lambdalet.config import (
    DEFAULT_CODE_STORAGE_LIMIT,
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    MIB,
    PYTHON_AGENT_ENV,
    ServerConfig,
)


def server_options(s: argparse.ArgumentParser) -> None:
    """Options of every role that runs functions or serves the API."""
    data_dir(s)
    s.add_argument(
        "--backend",
        choices=("auto", "runc", "process"),
        default="auto",
        help="sandbox backend (default: the strongest that works here)",
    )
    s.add_argument(
        "--spare-sandboxes",
        type=int,
        default=2,
        help="runc sandboxes kept ready so cold starts only attach the function "
        "(default 2; 0 = build each sandbox on demand)",
    )
    s.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="seconds an idle environment is kept before shutdown (default 300)",
    )
    s.add_argument(
        "--init-timeout",
        type=float,
        default=10.0,
        # tests only: shortens the on-demand Init limit (Lambda's is 10 s) so that the
        # integration tests prove the Init-timeout rules in a second or two
        help=argparse.SUPPRESS,
    )
    s.add_argument(
        "--lean-runtime-api",
        choices=("on", "off"),
        default="on",
        # benchmarks only: "off" serves every in-sandbox request through aiohttp
        help=argparse.SUPPRESS,
    )
    s.add_argument(
        "--freeze-delay-ms",
        type=float,
        default=10.0,
        help="milliseconds an environment stays thawed after an invoke before it is frozen; "
        "back-to-back invokes skip the freeze and thaw (default 10; 0 freezes at once)",
    )
    s.add_argument(
        "--account-concurrency",
        type=int,
        default=1000,
        help="account-level concurrency limit shared by all functions (default 1000)",
    )
    s.add_argument(
        "--async-delay-scale",
        type=float,
        default=1.0,
        help="multiply asynchronous retry delays (1 min, 2 min, throttle back-off) by this; "
        "tests use e.g. 0.001 (default 1)",
    )
    s.add_argument(
        "--async-workers",
        type=int,
        default=32,
        help="asynchronous events run at once at most (default 32)",
    )
    s.add_argument(
        "--credentials-file",
        type=Path,
        help="file of 'ACCESS_KEY_ID SECRET_ACCESS_KEY' lines whose SigV4 signatures the API "
        "accepts (also LAMBDALET_ACCESS_KEY_ID / LAMBDALET_SECRET_ACCESS_KEY); required "
        "with a --host beyond loopback",
    )
    s.add_argument(
        "--function-log-mb",
        type=float,
        default=4.0,
        help="each function's log file rotates at this size, in MiB (default 4)",
    )
    s.add_argument(
        "--function-log-backups",
        type=int,
        default=2,
        help="rotated log files kept per function: its logs take at most "
        "--function-log-mb x (this + 1) (default 2)",
    )
    s.add_argument(
        "--code-storage-mb",
        type=float,
        default=DEFAULT_CODE_STORAGE_LIMIT / MIB,
        help="code storage limit (TotalCodeSize: zips of every function version and layer "
        "version), in MiB; past it, CodeStorageExceededException (default 75 GiB)",
    )
    s.add_argument(
        "--space-reserve-mb",
        type=float,
        default=8.0,
        help="space kept allocated in the data directory and given back when a delete finds "
        "the disk full, so that deletes always work, in MiB (default 8)",
    )
    s.add_argument(
        "--code-url-ttl",
        type=int,
        default=600,
        help="seconds a code-download URL (GetFunction's Code.Location) stays valid "
        "(default 600, as AWS)",
    )
    s.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="pull container images from this registry over plain HTTP (loopback registries "
        "always are); repeatable",
    )
    s.add_argument(
        "--registry-auth-file",
        type=Path,
        help="registry credentials (Docker's config.json format; default: skopeo's, which "
        "include ~/.docker/config.json)",
    )
    s.add_argument("--log-level", default="INFO", help="server log level (default INFO)")
    python_fallback(s)


def python_fallback(p: argparse.ArgumentParser) -> None:
    from lambdalet.runtimes.python import FALLBACK_POLICIES

    p.add_argument(
        "--python-fallback",
        choices=FALLBACK_POLICIES,
        default="host",
        help="a python3.X function when the host has no Python 3.X: 'host' runs it on the "
        "Python running lambdalet and says so in its log (default), 'refuse' rejects it",
    )


def data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"state directory (default ./{DEFAULT_DATA_DIR})",
    )


def _credentials(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    akid = os.environ.get("LAMBDALET_ACCESS_KEY_ID")
    secret = os.environ.get("LAMBDALET_SECRET_ACCESS_KEY")
    if akid and secret:
        pairs.append((akid, secret))
    if args.credentials_file is not None:
        for line in args.credentials_file.read_text().splitlines():
            fields = line.split()
            if len(fields) == 2 and not line.lstrip().startswith("#"):
                pairs.append((fields[0], fields[1]))
    return tuple(pairs)


def serve(args: argparse.Namespace) -> int:
    from lambdalet.app import ConfigError, run_server

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pyroute2 logs every netlink message at DEBUG
    for noisy in ("pyroute2", "pyroute2.netlink.core"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = ServerConfig(
        data_dir=args.data_dir.resolve(),
        host=getattr(args, "host", DEFAULT_HOST),
        port=getattr(args, "port", DEFAULT_PORT),
        backend=args.backend,
        idle_timeout_s=args.idle_timeout,
        init_timeout_s=max(0.0, args.init_timeout),
        lean_runtime_api=args.lean_runtime_api == "on",
        spare_sandboxes=args.spare_sandboxes,
        freeze_delay_s=max(0.0, args.freeze_delay_ms) / 1000.0,
        account_concurrency=args.account_concurrency,
        async_delay_scale=args.async_delay_scale,
        async_workers=args.async_workers,
        credentials=_credentials(args),
        log_max_bytes=max(1024, int(args.function_log_mb * MIB)),
        log_backups=max(0, args.function_log_backups),
        code_storage_limit=int(args.code_storage_mb * MIB),
        space_reserve_bytes=max(0, int(args.space_reserve_mb * MIB)),
        code_url_ttl_s=args.code_url_ttl,
        insecure_registries=tuple(args.insecure_registry),
        registry_auth_file=args.registry_auth_file,
        python_fallback=args.python_fallback,
        python_agent=bool(os.environ.get(PYTHON_AGENT_ENV)),
    )
    try:
        config = cluster_cli.with_cluster_options(config, args)
    except ValueError as e:
        print(f"lambdalet: {e}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_server(config)
    except ConfigError as e:
        print(f"lambdalet: {e}", file=sys.stderr)
        return 2
    return 0


def doctor(args: argparse.Namespace) -> int:
    from lambdalet.runtimes.catalog import describe_all
    from lambdalet.sandbox.detect import describe

    config = ServerConfig(
        data_dir=args.data_dir.resolve(),
        backend=args.backend,
        python_fallback=args.python_fallback,
        python_agent=bool(os.environ.get(PYTHON_AGENT_ENV)),
    )
    info = describe(config)
    runtimes = describe_all(config)
    if args.json:
        out = asdict(info)
        out["capabilities"] = sorted(info.capabilities)
        out["runtimes"] = [d.as_json() for d in runtimes]
        print(json.dumps(out, indent=2, default=list))
        return 0
    print(f"backend:   {info.backend}")
    print(f"isolation: {info.isolation}")
    print(f"cgroup:    {info.cgroup}")
    print(f"network:   {info.network}")
    for reason in info.reasons:
        print(f"  why: {reason}")
    if info.protections:
        print("protections:")
        for protection in info.protections:
            print(f"  {protection}")
    print(f"enforces:  {', '.join(sorted(info.capabilities)) or 'none of Lambda limits'}")
    for warning in info.warnings:
        print(f"  WARNING: {warning}")
    print("runtimes:")
    for d in runtimes:
        kind = "exact" if d.exact else "fallback"
        if d.family == "provided" or d.status == "unavailable":
            kind = d.status
        print(f"  {d.runtime:<16} {kind:<9} {d.status:<14} {d.runs_on}")
    return 0
