from __future__ import annotations

import json

import pytest

from lambdalet.images.spec import BadImage, ImageConfig, check_platform, merged_env, run_spec

CONFIG = json.dumps(
    {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/var/lang/bin:/usr/bin", "LANG=en_US.UTF-8", "ONLY=image", "EQ=a=b"],
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": ["app.handler"],
            "WorkingDir": "/var/task",
            "User": "ignored",
        },
    }
)


def test_run_spec_and_overrides() -> None:
    spec = run_spec(CONFIG)
    assert spec.argv(ImageConfig()) == ["/lambda-entrypoint.sh", "app.handler"]
    assert spec.cwd(ImageConfig()) == "/var/task"
    assert spec.env_map()["EQ"] == "a=b"
    # each override replaces its own part only
    assert spec.argv(ImageConfig(command=("other.handler",))) == [
        "/lambda-entrypoint.sh",
        "other.handler",
    ]
    assert spec.argv(ImageConfig(entry_point=("/bin/x",))) == ["/bin/x", "app.handler"]
    assert spec.argv(ImageConfig(entry_point=("/bin/x",), command=())) == ["/bin/x"]
    assert spec.cwd(ImageConfig(working_directory="/tmp")) == "/tmp"
    assert run_spec(json.dumps({"config": {}})).cwd(ImageConfig()) == "/"


def test_image_config_json_round_trip() -> None:
    doc = {"EntryPoint": ["/a"], "Command": [], "WorkingDirectory": "/w"}
    assert ImageConfig.from_json(doc).to_json() == doc
    assert ImageConfig.from_json({}).to_json() == {}


def test_env_precedence() -> None:
    spec = run_spec(CONFIG)
    lambda_env = {
        "PATH": "/lambda/default",
        "TZ": ":UTC",
        "LANG": "C.fn",  # the function's variable, a default key
        "AWS_LAMBDA_FUNCTION_NAME": "f",
        "ONLY": "function",
    }
    env = merged_env(spec, lambda_env, {"LANG": "C.fn", "ONLY": "function"}, ("PATH", "TZ", "LANG"))
    assert env["PATH"] == "/var/lang/bin:/usr/bin"  # image over Lambda's default
    assert env["TZ"] == ":UTC"  # default where the image says nothing
    assert env["LANG"] == "C.fn"  # function over image
    assert env["ONLY"] == "function"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "f"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        json.dumps({"config": {"Cmd": "a string"}}),
        json.dumps({"config": {"Env": [1]}}),
    ],
)
def test_bad_configs(raw: str) -> None:
    with pytest.raises(BadImage):
        run_spec(raw)


def test_platform() -> None:
    check_platform(run_spec(CONFIG), "x86_64")
    with pytest.raises(BadImage, match="linux/arm64"):
        check_platform(run_spec(CONFIG), "arm64")
