"""A function folder's lambdalet.toml / lambdalet.json as a plan."""

from __future__ import annotations

import tomllib
from pathlib import PurePath

import pytest

from lambdalet.ops.template import PlanError, load_config

BASE = PurePath("/fn")

TOML = """
name = "thumbs"
runtime = "python3.11"
handler = "app.handler"
memory = 512
timeout = 30
layers = ["../layers/pillow", "arn:aws:lambda:us-east-1:123456789012:layer:x:2"]
reserved_concurrency = 3
alias = "live"
provisioned_concurrency = 1

[environment]
BUCKET = "pics"
RETRIES = 3
DEBUG = true
"""


def test_config_file_becomes_a_one_function_template() -> None:
    t = load_config(tomllib.loads(TOML), BASE)
    (layer,) = t.layers()
    assert layer.name == "pillow"
    assert layer.content_dir == BASE / "../layers/pillow"
    (fn,) = t.functions({layer.logical_id: "arn:aws:lambda:us-east-1:123456789012:layer:pillow:1"})
    assert fn.name == "thumbs"
    assert fn.code_dir == BASE / "."
    assert (fn.runtime, fn.handler, fn.memory_mb, fn.timeout_s) == (
        "python3.11",
        "app.handler",
        512,
        30,
    )
    assert fn.environment == {"BUCKET": "pics", "RETRIES": "3", "DEBUG": "true"}
    assert fn.layers == (
        "arn:aws:lambda:us-east-1:123456789012:layer:pillow:1",
        "arn:aws:lambda:us-east-1:123456789012:layer:x:2",
    )
    assert (fn.reserved_concurrency, fn.alias, fn.provisioned_concurrency) == (3, "live", 1)


def test_minimal_config_has_lambda_defaults() -> None:
    t = load_config({"name": "f", "runtime": "python3.11", "handler": "a.b"}, BASE)
    (fn,) = t.functions({})
    assert (fn.memory_mb, fn.timeout_s, fn.layers, fn.environment) == (128, 3, (), {})
    assert fn.alias is None and fn.reserved_concurrency is None


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({"runtime": "python3.11", "handler": "a.b"}, "name", "required"),
        ({"name": "f", "handler": "a.b"}, "runtime", "required"),
        (
            {"name": "f", "runtime": "python3.11", "handler": "a.b", "memory": "big"},
            "memory",
            "integer",
        ),
        (
            {"name": "f", "runtime": "python3.11", "handler": "a.b", "memroy": 1},
            "memroy",
            "unknown",
        ),
        ({"name": "f", "runtime": "python3.11", "handler": "a.b", "layers": "x"}, "layers", "list"),
        ({"name": "f g", "runtime": "python3.11", "handler": "a.b"}, "name", "valid"),
        (
            {"name": "f", "runtime": "python3.11", "handler": "a.b", "environment": {"A": [1]}},
            "environment.A",
            "string",
        ),
    ],
)
def test_config_errors_name_the_file_and_key(
    doc: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(PlanError) as err:
        load_config(doc, BASE, "lambdalet.toml").functions({})
    assert err.value.resource == "lambdalet.toml"
    assert err.value.field == field
    assert words in str(err.value)
