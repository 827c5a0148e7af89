"""``lambdalet`` command line: serve, doctor, runtimes, logs, deploy, invoke, ps."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from lambdalet import __version__
from lambdalet.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, ServerConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambdalet", description=__doc__)
    p.add_argument("--version", action="version", version=f"lambdalet {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the Lambda API and execution environments")
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    _data_dir(s)
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
    s.add_argument("--log-level", default="INFO", help="server log level (default INFO)")
    _python_fallback(s)

    d = sub.add_parser("doctor", help="show the sandbox backend, cgroup and network mode in use")
    _data_dir(d)
    d.add_argument("--backend", choices=("auto", "runc", "process"), default="auto")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    _python_fallback(d)

    rt = sub.add_parser(
        "runtimes",
        help="list the runtimes and what each runs on, or install / update some",
        description="`lambdalet runtimes` lists every runtime: what it runs on (interpreter "
        "version and path, exact or a fallback), its pinned components (awslambdaric, boto3, "
        "botocore) and whether it is installed.  `lambdalet runtimes install python3.12 ...` "
        "installs or updates them now instead of at the first invoke.",
    )
    rt.add_argument("action", nargs="?", choices=("list", "install"), default="list")
    rt.add_argument("runtime", nargs="*", help="runtime ids to install (e.g. python3.12)")
    _data_dir(rt)
    rt.add_argument("--json", action="store_true", help="machine-readable output")
    _python_fallback(rt)

    lg = sub.add_parser("logs", help="print a function's log")
    lg.add_argument("function", help="function name")
    _data_dir(lg)
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    lg.add_argument(
        "--json",
        action="store_true",
        help="JSON Lines: one object per line with its message; platform lines (START, END, "
        "REPORT, INIT_START, ...) also with their type and fields",
    )

    _ops_parsers(sub)
    return p


_DEPLOY_EPILOG = """\
lambdalet.toml (only name, runtime and handler are required):

  name = "thumbs"
  runtime = "python3.11"
  handler = "app.handler"
  code = "."                      # folder zipped as the function's code
  memory = 512                    # MB (default 128)
  timeout = 30                    # seconds (default 3)
  layers = ["../layers/common"]   # folders published as layers, or layer version ARNs
  reserved_concurrency = 10
  alias = "live"                  # publish a version and point this alias at it
  provisioned_concurrency = 1     # on the alias
  [environment]
  BUCKET = "pictures"

Templates: AWS::Serverless::Function, AWS::Lambda::Function, AWS::Serverless::LayerVersion,
AWS::Lambda::LayerVersion, Globals.Function, Parameters (Default, --parameter-overrides),
Mappings (!FindInMap), Conditions (!Equals, !Not, !And, !Or, !Condition; a resource's
Condition; !If with AWS::NoValue), !Ref / !Sub / !GetAtt / !Join / !Select, and the pseudo
parameters AWS::Region, AWS::AccountId, AWS::Partition, AWS::StackName.  Functions without
FunctionName are named after their logical ID.  Other resource types are skipped with a note.
A !Ref, ${X} or !GetAtt X.Arn to a skipped AWS::S3::Bucket, AWS::DynamoDB::Table,
AWS::SQS::Queue, AWS::SNS::Topic (!GetAtt X.TopicArn) or AWS::IAM::Role gets the value
CloudFormation would give, from the name the template gives (BucketName, TableName,
QueueName, TopicName, RoleName) or else
<stack>-<LogicalId> (lowercased for buckets), with a warning; !Ref of a queue is its URL and
of a topic its ARN.  Any other reference to a skipped resource is an error.

Dependencies, as sam build: a Python function's requirements.txt is installed with pip
(binary manylinux2014_x86_64 wheels for its Python) next to its code, a Node.js function's
package.json with npm (production dependencies; npm ci with a lockfile) into node_modules; a
layer with Metadata: BuildMethod python3.X / nodejs* gets python/ or nodejs/node_modules.
Builds are cached in .lambdalet-build/ next to the template by the hash of those files.

Stacks: a deploy belongs to a stack, --stack-name, by default the name of the folder holding
the template (or lambdalet.toml).  Functions are tagged lambdalet:stack, lambdalet:logical-id
and lambdalet:source; at the end of a deploy, the stack's functions the template no longer
declares are deleted (--no-prune keeps them).  Functions not tagged with the stack are never
deleted.  Layer versions are immutable and are never deleted.
"""


def _ops_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from lambdalet.ops.client import DEFAULT_ENDPOINT

    def endpoint(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--endpoint",
            default=DEFAULT_ENDPOINT,
            help=f"the lambdalet server (default {DEFAULT_ENDPOINT}, or $LAMBDALET_ENDPOINT)",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")

    dp = sub.add_parser(
        "deploy",
        help="create or update functions and layers from a folder or a SAM template",
        description="PATH is a function folder with lambdalet.toml (or lambdalet.json), a "
        "SAM / CloudFormation template (YAML or JSON), or a folder holding template.yaml.",
        epilog=_DEPLOY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dp.add_argument("path", nargs="?", default=".", help="folder or file (default .)")
    endpoint(dp)
    dp.add_argument(
        "--watch", action="store_true", help="redeploy when code, layers or the template change"
    )
    dp.add_argument("--interval", type=float, default=0.3, help="--watch polling interval, seconds")
    dp.add_argument(
        "--parameter-overrides",
        dest="parameter",
        action="extend",
        nargs="+",
        metavar="NAME=VALUE",
        help="template parameter values, as SAM's: Key=Value ... or "
        "ParameterKey=Key,ParameterValue=Value ... (put PATH before this option)",
    )
    dp.add_argument(
        "--parameter",
        dest="parameter",
        action="append",
        metavar="NAME=VALUE",
        help="one template parameter value (repeatable)",
    )
    dp.add_argument(
        "--stack-name",
        help="the stack this deploy belongs to (default: the template's folder name)",
    )
    dp.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        help="keep the stack's functions that the template no longer declares",
    )

    ip = sub.add_parser("invoke", help="invoke a function and print its response")
    ip.add_argument("function", help="function name, name:qualifier or ARN")
    ip.add_argument("--payload", help="the event as JSON, or @FILE (default {})")
    ip.add_argument("--qualifier", help="version or alias")
    ip.add_argument("--tail", action="store_true", help="also print the log tail (stderr)")
    endpoint(ip)

    pp = sub.add_parser("ps", help="list execution environments")
    pp.add_argument("function", nargs="?", help="only this function's environments")
    endpoint(pp)


def _python_fallback(p: argparse.ArgumentParser) -> None:
    from lambdalet.runtimes.python import FALLBACK_POLICIES

    p.add_argument(
        "--python-fallback",
        choices=FALLBACK_POLICIES,
        default="host",
        help="a python3.X function when the host has no Python 3.X: 'host' runs it on the "
        "Python running lambdalet and says so in its log (default), 'refuse' rejects it",
    )


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"state directory (default ./{DEFAULT_DATA_DIR})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "runtimes":
        return _runtimes(args)
    if args.command == "logs":
        return _logs(args)
    if args.command in ("deploy", "invoke", "ps"):
        from lambdalet.ops import commands

        run = {
            "deploy": commands.deploy_command,
            "invoke": commands.invoke_command,
            "ps": commands.ps_command,
        }[args.command]
        return run(args)
    return 2


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


def _serve(args: argparse.Namespace) -> int:
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
        host=args.host,
        port=args.port,
        backend=args.backend,
        idle_timeout_s=args.idle_timeout,
        spare_sandboxes=args.spare_sandboxes,
        freeze_delay_s=max(0.0, args.freeze_delay_ms) / 1000.0,
        account_concurrency=args.account_concurrency,
        async_delay_scale=args.async_delay_scale,
        async_workers=args.async_workers,
        credentials=_credentials(args),
        python_fallback=args.python_fallback,
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_server(config)
    except ConfigError as e:
        print(f"lambdalet: {e}", file=sys.stderr)
        return 2
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from lambdalet.runtimes.catalog import describe_all
    from lambdalet.sandbox.detect import describe

    config = ServerConfig(
        data_dir=args.data_dir.resolve(),
        backend=args.backend,
        python_fallback=args.python_fallback,
    )
    info = describe(config)
    runtimes = describe_all(config)
    if args.json:
        out = asdict(info)
        out["runtimes"] = [d.as_json() for d in runtimes]
        print(json.dumps(out, indent=2, default=list))
        return 0
    print(f"backend:   {info.backend}")
    print(f"isolation: {info.isolation}")
    print(f"cgroup:    {info.cgroup}")
    print(f"network:   {info.network}")
    for reason in info.reasons:
        print(f"  why: {reason}")
    for warning in info.warnings:
        print(f"  WARNING: {warning}")
    print("runtimes:")
    for d in runtimes:
        kind = "exact" if d.exact else "fallback"
        if d.family == "provided" or d.status == "unavailable":
            kind = d.status
        print(f"  {d.runtime:<16} {kind:<9} {d.status:<14} {d.runs_on}")
    return 0


def _runtimes(args: argparse.Namespace) -> int:
    from lambdalet.runtimes.catalog import UnknownRuntime, describe_all, family_of, install
    from lambdalet.runtimes.description import FIRST_USE_NOTE, NOT_INSTALLED
    from lambdalet.runtimes.python import RuntimeInstallError

    config = ServerConfig(data_dir=args.data_dir.resolve(), python_fallback=args.python_fallback)
    if args.action == "install":
        if not args.runtime:
            print("lambdalet runtimes install: name at least one runtime", file=sys.stderr)
            return 2
        done = []
        try:
            for runtime_id in args.runtime:
                family_of(runtime_id)  # refuse an unknown id before installing anything
            for runtime_id in args.runtime:
                say = (lambda line: print(line, file=sys.stderr)) if args.json else print
                done.append(install(config, runtime_id, say))
        except (UnknownRuntime, RuntimeInstallError) as e:
            print(f"lambdalet: {e}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps({"Runtimes": [d.as_json() for d in done]}, indent=2))
        return 0
    if args.runtime:
        print("lambdalet runtimes: runtime ids go after 'install'", file=sys.stderr)
        return 2
    runtimes = describe_all(config)
    if args.json:
        print(json.dumps({"Runtimes": [d.as_json() for d in runtimes]}, indent=2))
        return 0
    from lambdalet.ops.client import Style, table

    style = Style(sys.stdout)
    rows = []
    for d in runtimes:
        parts = [f"{k} {v}" for k, v in d.components.items()]
        rows.append(
            [
                d.runtime,
                d.status,
                d.runs_on + ("" if d.exact else " (fallback)"),
                d.path,
                ", ".join(parts),
            ]
        )
    print(table(["RUNTIME", "STATUS", "RUNS ON", "PATH", "COMPONENTS"], rows, style))
    for d in runtimes:
        for note in d.notes:
            if d.status != NOT_INSTALLED or not note.startswith(FIRST_USE_NOTE):
                print(style.dim(f"{d.runtime}: {note}"))
    if any(d.status == NOT_INSTALLED for d in runtimes):
        print(style.dim(f"not installed: {FIRST_USE_NOTE} <runtime>"))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from lambdalet.env.log_sink import function_log_path

    path = function_log_path(args.data_dir.resolve() / "logs", args.function)
    if not path.exists() and not args.follow:
        message = f"no logs for function {args.function!r} in {path.parent}"
        print(message, file=sys.stderr)
        if args.json:
            print(json.dumps({"error": message}), flush=True)
        return 1
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --follow
        _print_log(path, args.follow, args.json)
    return 0


def _print_log(path: Path, follow: bool, as_json: bool = False, poll_s: float = 0.2) -> None:
    """Print the log; with ``follow``, keep printing what is appended, until interrupted.

    A log file replaced or emptied meanwhile (rotated by hand) is read again from its start.
    With ``as_json``, each line is printed as a JSON object once it is complete.
    """
    from lambdalet.ops.logs import JsonLines

    out = sys.stdout.buffer
    lines = JsonLines()

    def write(chunk: bytes) -> None:
        data = lines.feed(chunk).encode() if as_json else chunk
        if data:
            out.write(data)
            out.flush()

    def flush_partial() -> None:
        if as_json:
            out.write(lines.flush().encode())
            out.flush()

    while not path.exists():
        time.sleep(poll_s)
    f = path.open("rb")
    try:
        while True:
            chunk = f.read(65536)
            if chunk:
                write(chunk)
                continue
            if not follow:
                flush_partial()
                return
            time.sleep(poll_s)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell():
                flush_partial()
                f.close()
                f = path.open("rb")
    finally:
        f.close()


if __name__ == "__main__":
    raise SystemExit(main())
