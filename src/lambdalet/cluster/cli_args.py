"""The cluster's command-line flags: ``serve --database URL [--worker]`` and
``lambdalet worker --database URL --listen HOST:PORT [--memory-mb N]``."""

from __future__ import annotations

import argparse
import dataclasses

from lambdalet.config import ServerConfig


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database",
        metavar="postgresql://USER@HOST:PORT/DBNAME",
        help="run as a stateless API replica of the cluster whose state is in this "
        "PostgreSQL (default: one process, SQLite in --data-dir)",
    )
    p.add_argument(
        "--worker",
        action="store_true",
        help="with --database: also be a worker (run sandboxes) in this process",
    )


def add_worker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database",
        required=True,
        metavar="postgresql://USER@HOST:PORT/DBNAME",
        help="the cluster's PostgreSQL",
    )
    p.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="address of this worker's internal invoke endpoint (API replicas connect here)",
    )
    p.add_argument(
        "--memory-mb",
        type=int,
        help="memory offered to environments (default: the host's available memory)",
    )


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT, not {value!r}")
    return host, int(port)


def with_cluster_options(config: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    """``config`` with the cluster flags of ``args`` (unchanged without ``--database``);
    ``ValueError`` for a bad combination."""
    database = getattr(args, "database", None)
    if args.command == "worker":
        host, port = parse_listen(args.listen)
        return dataclasses.replace(
            config,
            host=host,
            port=port,
            database_url=database,
            cluster_role="worker",
            worker_memory_mb=args.memory_mb,
        )
    if database is None:
        if args.worker:
            raise ValueError("--worker needs --database")
        return config
    if not database.startswith(("postgresql://", "postgres://")):
        raise ValueError("--database must be a postgresql:// URL")
    return dataclasses.replace(
        config, database_url=database, cluster_role="both" if args.worker else "api"
    )
