"""``lambdalet`` command line: serve, doctor, runtimes, logs, deploy, invoke, ps."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from lambdalet import __version__
from lambdalet.config import (
    DEFAULT_CODE_STORAGE_LIMIT,
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    MIB,
    PYTHON_AGENT_ENV,
    ServerConfig,
)


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

    im = sub.add_parser("images", help="list pulled container images, or prune unused ones")
    im.add_argument(
        "action", nargs="?", choices=("list", "prune"), default="list", help="(default list)"
    )
    _data_dir(im)
    im.add_argument("--json", action="store_true", help="machine-readable output")

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
FunctionName are named as CloudFormation names them, <stack>-<LogicalId>-<SUFFIX> (the suffix
derived from both, so it is the same at every deploy); `lambdalet invoke LogicalId` and
`lambdalet logs LogicalId` find them from the stack's folder.  Other resource types are
skipped with a note.
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
deleted.  Layer versions are immutable and are never deleted.  A deploy that fails half-way
rolls the functions back: those it created are deleted, those it updated get their
configuration, code and tags back.  `lambdalet stacks` lists stacks; `lambdalet delete STACK`
deletes one.
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
    ip.add_argument(
        "--debug-port",
        type=int,
        metavar="N",
        help="start a new environment whose runtime waits for a debugger on 127.0.0.1:N "
        "(Python: debugpy, installed into the runtime on first use; Node.js: the "
        "inspector, waiting until a debugger says run); Init and the invoke "
        "may then take 900 s",
    )
    endpoint(ip)

    lg = sub.add_parser(
        "logs",
        help="print a function's log (from the server's CloudWatch Logs API)",
        description="Prints the events of the log group /aws/lambda/FUNCTION (or of FUNCTION "
        "when it starts with /), oldest first, each with its time; a multi-line event (a "
        "traceback) as several lines.  The same events as `aws logs filter-log-events "
        "--log-group-name /aws/lambda/FUNCTION --endpoint-url ENDPOINT`.",
    )
    lg.add_argument("function", help="function name, or a log group name")
    lg.add_argument(
        "--follow", "-f", action="store_true",
        help="keep printing new events until Ctrl-C; alone, starts at the end (only new events)",
    )  # fmt: skip
    lg.add_argument(
        "--since", help="only events since: 30s, 10m, 2h, 1d, 1w ago, or an ISO-8601 time"
    )
    lg.add_argument("--tail", type=int, metavar="N", help="only the last N events")
    lg.add_argument(
        "--filter",
        metavar="PATTERN",
        help="a CloudWatch Logs filter pattern: ERROR, '?ERROR ?WARN', '\"a phrase\"', "
        "'-DEBUG', '{ $.level = \"ERROR\" }'",
    )
    endpoint(lg)

    for cmd in (ip, lg):
        cmd.add_argument(
            "--stack-name",
            help="the stack whose logical IDs FUNCTION may name (default: the stack of the "
            "template or lambdalet.toml in this folder)",
        )

    st = sub.add_parser("stacks", help="list the stacks deployed on the server")
    endpoint(st)

    dl = sub.add_parser(
        "delete",
        help="delete a stack: every function deployed with it",
        description="Deletes every function tagged with the stack (lambdalet:stack).  Asks "
        "for confirmation when stdin is a terminal, unless --yes.  Layer versions stay.",
    )
    dl.add_argument("stack", help="stack name (see `lambdalet stacks`)")
    dl.add_argument("--yes", "-y", action="store_true", help="do not ask")
    endpoint(dl)

    pp = sub.add_parser("ps", help="list execution environments")
    pp.add_argument("function", nargs="?", help="only this function's environments")
    endpoint(pp)

    sp = sub.add_parser("schedules", help="list schedules and their next fire times")
    sp.add_argument("--stack", help="only this stack's schedules")
    endpoint(sp)


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
    if args.command == "schedules":
        from lambdalet.ops.trigger_commands import schedules_command

        return schedules_command(args)
    if args.command == "images":
        from lambdalet.images.commands import images_command

        return images_command(args.data_dir.resolve(), args.action, args.json)
    if args.command in ("deploy", "invoke", "ps", "logs", "stacks", "delete"):
        from lambdalet.ops import commands

        run = {
            "deploy": commands.deploy_command,
            "invoke": commands.invoke_command,
            "ps": commands.ps_command,
            "logs": commands.logs_command,
            "stacks": commands.stacks_command,
            "delete": commands.delete_command,
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


if __name__ == "__main__":
    raise SystemExit(main())
