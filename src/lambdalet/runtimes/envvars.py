"""Environment variables of the processes in an execution environment (pure functions).

- :func:`runtime_environment`: the runtime process (contract §6.1 reserved + §6.2
  unreserved defaults, then the function's own variables).
- :func:`extension_environment`: external extensions (§2.10: the runtime's minus a few
  names and minus every name starting with ``_``).
- :func:`log_group_name`, :func:`log_stream_name`: §5.1.
- :data:`RESERVED_ENV_KEYS`: keys CreateFunction / UpdateFunctionConfiguration reject.

Paths come from the :class:`SandboxView`: ``/var/task`` etc. in a real sandbox, host paths
in the ``process`` backend.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from lambdalet.model import FunctionRecord
from lambdalet.sandbox.base import SandboxView

#: Users may not set these (§6.1).  The API validation imports this.
RESERVED_ENV_KEYS: frozenset[str] = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "AWS_LAMBDA_MAX_CONCURRENCY",
        "AWS_LAMBDA_METADATA_API",
        "AWS_LAMBDA_METADATA_TOKEN",
    }
)

#: Names the runtime has and extensions do not (§2.10), besides every ``_``-prefixed one.
EXTENSION_DROPPED_KEYS: frozenset[str] = frozenset(
    {
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_XRAY_CONTEXT_MISSING",
        "AWS_XRAY_DAEMON_ADDRESS",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
        "_AWS_XRAY_DAEMON_ADDRESS",
        "_AWS_XRAY_DAEMON_PORT",
        "_HANDLER",
    }
)

#: Initialization types lambdalet uses; the others switch the RICs to other protocols.
INIT_TYPES = ("on-demand", "provisioned-concurrency")

#: Credentials given to functions.  lambdalet accepts any credentials, and real ones must
#: never reach a function, so these are fixed placeholders of the right shape.
DUMMY_ACCESS_KEY_ID = "ASIALAMBDALETLOCAL00"
DUMMY_SECRET_ACCESS_KEY = "lambdalet/local/placeholder/secret/key/0"
DUMMY_SESSION_TOKEN = "lambdalet-local-session-token"

XRAY_DAEMON_PORT = 2000


def log_group_name(fn: FunctionRecord) -> str:
    """``/aws/lambda/<name>`` unless LoggingConfig.LogGroup names another."""
    return fn.log_group or f"/aws/lambda/{fn.name}"


def log_stream_name(version: str, *, now: datetime | None = None, token: str | None = None) -> str:
    """``YYYY/MM/DD/[<version>]<32 lowercase hex>`` (UTC date), one per environment."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y/%m/%d}/[{version}]{token or secrets.token_hex(16)}"


def region_of(fn: FunctionRecord) -> str:
    """The region field of the function's ARN (``arn:aws:lambda:<region>:...``)."""
    parts = fn.arn.split(":")
    if len(parts) < 4 or not parts[3]:
        raise ValueError(f"no region in function ARN {fn.arn!r}")
    return parts[3]


def is_python(runtime_id: str) -> bool:
    return runtime_id.startswith("python")


def is_provided(runtime_id: str) -> bool:
    return runtime_id == "provided" or runtime_id.startswith("provided.")


def python_path(view: SandboxView, python_version: str, sdk_dir: str | None = None) -> str:
    """PYTHONPATH giving Lambda's import order after the task root (cwd, sys.path[0]):

    ``/opt/python/lib/python3.X/site-packages``, ``/opt/python``, the runtime's own
    packages (boto3) in ``/var/lang/lib/python3.X/site-packages``, then ``/var/runtime``.
    """
    return ":".join(
        (
            f"{view.opt_dir}/python/lib/python{python_version}/site-packages",
            f"{view.opt_dir}/python",
            sdk_dir or f"{view.lang_dir}/lib/python{python_version}/site-packages",
            view.runtime_dir,
        )
    )


def runtime_environment(
    fn: FunctionRecord,
    view: SandboxView,
    *,
    log_stream: str,
    init_type: str = "on-demand",
    region: str | None = None,
    python_version: str | None = None,
    extra_path: Sequence[str] = (),
    python_sdk_dir: str | None = None,
) -> dict[str, str]:
    """The environment of the runtime process.

    ``python_version`` is the interpreter actually used (``PythonRuntime.python_version``;
    default: the function's runtime id); ``extra_path`` goes in front of PATH
    (``PythonRuntime.extra_path(view)``); ``python_sdk_dir`` is where the runtime's boto3 is
    (``PythonRuntime.sdk_dir(view)``).  ``region`` defaults to the one in the ARN.

    The function's variables override the unreserved defaults (PATH, TZ, ...) and add new
    names; reserved names in them are ignored (the API rejects them anyway).
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"unsupported initialization type {init_type!r}")
    region = region or region_of(fn)
    xray_host = view.runtime_api.rpartition(":")[0] or view.runtime_api

    env: dict[str, str] = {
        # §6.2 unreserved defaults: the function's variables may replace these.
        "PATH": ":".join(
            (
                *extra_path,
                f"{view.lang_dir}/bin",
                "/usr/local/bin",
                "/usr/bin/",
                "/bin",
                f"{view.opt_dir}/bin",
            )
        ),
        "LD_LIBRARY_PATH": ":".join(
            (
                f"{view.lang_dir}/lib",
                "/lib64",
                "/usr/lib64",
                view.runtime_dir,
                f"{view.runtime_dir}/lib",
                view.task_root,
                f"{view.task_root}/lib",
                f"{view.opt_dir}/lib",
            )
        ),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PWD": view.task_root,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": f"{xray_host}:{XRAY_DAEMON_PORT}",
        "_AWS_XRAY_DAEMON_ADDRESS": xray_host,
        "_AWS_XRAY_DAEMON_PORT": str(XRAY_DAEMON_PORT),
    }
    if is_python(fn.runtime):
        version = python_version or fn.runtime.removeprefix("python")
        env["PYTHONPATH"] = python_path(view, version, python_sdk_dir)

    env.update({k: v for k, v in fn.environment.items() if k not in RESERVED_ENV_KEYS})

    # §6.1 reserved: always the platform's values.
    env.update(
        {
            "_HANDLER": fn.handler,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": fn.version,
            "AWS_LAMBDA_INITIALIZATION_TYPE": init_type,
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group_name(fn),
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_ACCESS_KEY": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
            "AWS_SESSION_TOKEN": DUMMY_SESSION_TOKEN,
            "AWS_LAMBDA_RUNTIME_API": view.runtime_api,
            "LAMBDA_TASK_ROOT": view.task_root,
            "LAMBDA_RUNTIME_DIR": view.runtime_dir,
        }
    )
    if not is_provided(fn.runtime):
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{fn.runtime}"
    if fn.log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        if fn.application_log_level:
            env["AWS_LAMBDA_LOG_LEVEL"] = fn.application_log_level
    return env


def extension_environment(runtime_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of external extensions, derived from the runtime's (§2.10)."""
    return {
        k: v
        for k, v in runtime_env.items()
        if k not in EXTENSION_DROPPED_KEYS and not k.startswith("_")
    }
