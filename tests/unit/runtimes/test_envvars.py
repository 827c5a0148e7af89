from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lambdalet.model import FunctionRecord
from lambdalet.runtimes import envvars
from lambdalet.runtimes.envvars import (
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    DUMMY_SESSION_TOKEN,
    RESERVED_ENV_KEYS,
    extension_environment,
    log_group_name,
    log_stream_name,
    runtime_environment,
)
from lambdalet.sandbox.base import SandboxView

VIEW = SandboxView(
    task_root="/var/task",
    opt_dir="/opt",
    runtime_dir="/var/runtime",
    lang_dir="/var/lang",
    tmp_dir="/tmp",
    runtime_api="169.254.100.1:9001",
)
HOST_VIEW = SandboxView(
    task_root="/data/code/abc",
    opt_dir="/data/envs/e1/opt",
    runtime_dir="/data/runtimes/python3.11",
    lang_dir="/root/.pyenv/versions/3.11.7",
    tmp_dir="/data/envs/e1/tmp",
    runtime_api="127.0.0.1:40123",
)
STREAM = "2024/04/23/[$LATEST]235e802547a3435abb4fa7ef75c6f131"


def record(runtime: str = "python3.12", **kw: object) -> FunctionRecord:
    fields: dict[str, object] = dict(
        name="my-fn",
        version="$LATEST",
        arn="arn:aws:lambda:eu-west-1:123456789012:function:my-fn",
        runtime=runtime,
        handler="app.handler",
        role="arn:aws:iam::123456789012:role/r",
        memory_mb=256,
        timeout_s=3,
        ephemeral_mb=512,
        environment={},
        layers=(),
        code_dir=Path("/data/code/abc"),
        code_sha256="x",
        code_size=1,
        revision_id="r1",
    )
    fields.update(kw)
    return FunctionRecord(**fields)  # type: ignore[arg-type]


def test_python_runtime_environment_exact() -> None:
    env = runtime_environment(record(), VIEW, log_stream=STREAM)
    assert env == {
        "_HANDLER": "app.handler",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_FUNCTION_NAME": "my-fn",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/my-fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": STREAM,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_ACCESS_KEY": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": DUMMY_SESSION_TOKEN,
        "AWS_LAMBDA_RUNTIME_API": "169.254.100.1:9001",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": (
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:"
            "/var/task:/var/task/lib:/opt/lib"
        ),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PWD": "/var/task",
        "PYTHONPATH": (
            "/opt/python/lib/python3.12/site-packages:/opt/python:"
            "/var/lang/lib/python3.12/site-packages:/var/runtime"
        ),
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.100.1:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "169.254.100.1",
        "_AWS_XRAY_DAEMON_PORT": "2000",
    }


def test_never_sets_max_concurrency_trace_id_or_metadata() -> None:
    env = runtime_environment(
        record(environment={"AWS_LAMBDA_MAX_CONCURRENCY": "4", "_X_AMZN_TRACE_ID": "t"}),
        VIEW,
        log_stream=STREAM,
    )
    for name in ("AWS_LAMBDA_MAX_CONCURRENCY", "_X_AMZN_TRACE_ID", "AWS_LAMBDA_METADATA_API"):
        assert name not in env


def test_provided_has_no_execution_env_and_no_pythonpath() -> None:
    for runtime in ("provided", "provided.al2", "provided.al2023"):
        env = runtime_environment(
            record(runtime, handler="function.handler"), VIEW, log_stream=STREAM
        )
        assert "AWS_EXECUTION_ENV" not in env
        assert "PYTHONPATH" not in env
        assert env["PATH"].startswith("/var/lang/bin:")
        assert env["_HANDLER"] == "function.handler"
        assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"


def test_paths_come_from_the_view() -> None:
    env = runtime_environment(record("python3.11"), HOST_VIEW, log_stream=STREAM)
    assert env["LAMBDA_TASK_ROOT"] == "/data/code/abc"
    assert env["LAMBDA_RUNTIME_DIR"] == "/data/runtimes/python3.11"
    assert env["PATH"] == (
        "/root/.pyenv/versions/3.11.7/bin:/usr/local/bin:/usr/bin/:/bin:/data/envs/e1/opt/bin"
    )
    assert env["LD_LIBRARY_PATH"].startswith("/root/.pyenv/versions/3.11.7/lib:")
    assert env["PYTHONPATH"] == (
        "/data/envs/e1/opt/python/lib/python3.11/site-packages:"
        "/data/envs/e1/opt/python:/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages:"
        "/data/runtimes/python3.11"
    )
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:40123"
    assert env["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2000"


def test_python_version_and_extra_path_of_a_fallback_runtime() -> None:
    env = runtime_environment(
        record("python3.9"),
        VIEW,
        log_stream=STREAM,
        python_version="3.11",
        extra_path=("/var/runtime/bin",),
    )
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.9"
    assert env["PYTHONPATH"].startswith("/opt/python/lib/python3.11/site-packages:")
    assert env["PATH"].startswith("/var/runtime/bin:/var/lang/bin:")


def test_user_variables_extend_and_override_unreserved_only() -> None:
    user = {
        "MY_SETTING": "1",
        "PATH": "/custom/bin",
        "TZ": "Europe/Paris",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "/var/task/vendor",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "AWS_REGION": "mars-1",
        "_HANDLER": "evil.handler",
        "AWS_ACCESS_KEY_ID": "AKIAREAL",
        "LAMBDA_TASK_ROOT": "/elsewhere",
    }
    env = runtime_environment(record(environment=user), VIEW, log_stream=STREAM)
    assert env["MY_SETTING"] == "1"
    assert env["PATH"] == "/custom/bin"
    assert env["TZ"] == "Europe/Paris"
    assert env["LANG"] == "C.UTF-8"
    assert env["PYTHONPATH"] == "/var/task/vendor"
    assert env["AWS_XRAY_CONTEXT_MISSING"] == "IGNORE_ERROR"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_ACCESS_KEY_ID"] == DUMMY_ACCESS_KEY_ID
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"


def test_exec_wrapper_is_passed_through() -> None:
    env = runtime_environment(
        record(environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/wrapper"}), VIEW, log_stream=STREAM
    )
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/wrapper"


def test_init_types() -> None:
    env = runtime_environment(
        record(), VIEW, log_stream=STREAM, init_type="provisioned-concurrency"
    )
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    with pytest.raises(ValueError):
        runtime_environment(record(), VIEW, log_stream=STREAM, init_type="snap-start")


def test_region_override_version_and_memory() -> None:
    env = runtime_environment(
        record(version="7", memory_mb=1024), VIEW, log_stream=STREAM, region="us-east-1"
    )
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "7"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "1024"


def test_log_group_and_json_logging() -> None:
    fn = record(log_group="/custom/group", log_format="JSON", application_log_level="DEBUG")
    env = runtime_environment(fn, VIEW, log_stream=STREAM)
    assert log_group_name(fn) == "/custom/group"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/custom/group"
    assert env["AWS_LAMBDA_LOG_FORMAT"] == "JSON"
    assert env["AWS_LAMBDA_LOG_LEVEL"] == "DEBUG"
    text = runtime_environment(record(), VIEW, log_stream=STREAM)
    assert "AWS_LAMBDA_LOG_FORMAT" not in text
    assert "AWS_LAMBDA_LOG_LEVEL" not in text


def test_every_platform_set_reserved_key_is_present() -> None:
    env = runtime_environment(record(), VIEW, log_stream=STREAM)
    never = {
        "_X_AMZN_TRACE_ID",
        "AWS_LAMBDA_MAX_CONCURRENCY",
        "AWS_LAMBDA_METADATA_API",
        "AWS_LAMBDA_METADATA_TOKEN",
    }
    assert RESERVED_ENV_KEYS - never <= env.keys()


def test_reserved_keys_constant() -> None:
    assert isinstance(RESERVED_ENV_KEYS, frozenset)
    for name in ("AWS_REGION", "_HANDLER", "AWS_LAMBDA_MAX_CONCURRENCY", "AWS_ACCESS_KEY"):
        assert name in RESERVED_ENV_KEYS
    for name in ("PATH", "PYTHONPATH", "TZ", "LANG", "LD_LIBRARY_PATH", "AWS_LAMBDA_EXEC_WRAPPER"):
        assert name not in RESERVED_ENV_KEYS


def test_extension_environment_drops_the_right_names() -> None:
    runtime_env = runtime_environment(
        record(environment={"CUSTOMER": "yes", "_PRIVATE": "x"}), VIEW, log_stream=STREAM
    )
    runtime_env["_LAMBDA_TELEMETRY_LOG_FD"] = "3"
    runtime_env["_X_AMZN_TRACE_ID"] = "Root=1-abc"
    ext = extension_environment(runtime_env)
    for name in (
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
        "_LAMBDA_TELEMETRY_LOG_FD",
        "_X_AMZN_TRACE_ID",
        "_PRIVATE",
    ):
        assert name not in ext, name
    assert not any(k.startswith("_") for k in ext)
    for name in (
        "CUSTOMER",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_RUNTIME_API",
        "TZ",
        "PATH",
        "LD_LIBRARY_PATH",
    ):
        assert ext[name] == runtime_env[name], name
    assert (
        set(ext)
        == {k for k in runtime_env if not k.startswith("_")} - envvars.EXTENSION_DROPPED_KEYS
    )


def test_log_stream_name_format() -> None:
    name = log_stream_name("$LATEST", now=datetime(2024, 4, 23, 23, 59, tzinfo=UTC))
    assert re.fullmatch(r"2024/04/23/\[\$LATEST\][0-9a-f]{32}", name), name
    assert log_stream_name("3", token="0" * 32, now=datetime(2025, 1, 2, tzinfo=UTC)) == (
        "2025/01/02/[3]" + "0" * 32
    )
    assert log_stream_name("$LATEST") != log_stream_name("$LATEST")
    before = datetime.now(UTC).strftime("%Y/%m/%d/")
    name = log_stream_name("1")
    after = datetime.now(UTC).strftime("%Y/%m/%d/")
    assert name.startswith((before, after))


def test_log_stream_date_is_utc() -> None:
    from datetime import timedelta, timezone

    late_evening_west = datetime(2024, 4, 23, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert log_stream_name("1", now=late_evening_west, token="a" * 32).startswith("2024/04/24/")


def test_region_is_required() -> None:
    with pytest.raises(ValueError):
        runtime_environment(replace(record(), arn="not-an-arn"), VIEW, log_stream=STREAM)
