"""``lambdalet`` command line: serve, doctor, runtimes, logs, deploy, invoke, ps."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lambdalet import __version__
from lambdalet.cli_server import data_dir, doctor, python_fallback, serve, server_options
from lambdalet.cluster import cli_args as cluster_cli
from lambdalet.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambdalet", description=__doc__)
    p.add_argument("--version", action="version", version=f"lambdalet {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the Lambda API and execution environments")
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    server_options(s)
    cluster_cli.add_serve_flags(s)
    w = sub.add_parser(
        "worker", help="run a cluster worker: sandboxes for the API replicas of --database"
    )
    cluster_cli.add_worker_flags(w)
    server_options(w)

    d = sub.add_parser("doctor", help="show the sandbox backend, cgroup and network mode in use")
    data_dir(d)
    d.add_argument("--backend", choices=("auto", "runc", "process"), default="auto")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    python_fallback(d)

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
    data_dir(rt)
    rt.add_argument("--json", action="store_true", help="machine-readable output")
    python_fallback(rt)

    im = sub.add_parser("images", help="list pulled container images, or prune unused ones")
    im.add_argument(
        "action", nargs="?", choices=("list", "prune"), default="list", help="(default list)"
    )
    data_dir(im)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("serve", "worker"):
        return serve(args)
    if args.command == "doctor":
        return doctor(args)
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
