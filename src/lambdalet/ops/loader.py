"""Reading what ``lambdalet deploy PATH`` points at into a :class:`Template`.

CloudFormation's short-form tags (``!Ref``, ``!Sub``, ``!GetAtt``, ...) are read by cfn-flip's
``cfn_tools`` loader, which turns them into their long form (``{"Ref": ...}``).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from lambdalet.ops.template import CONFIG_FILES, PlanError, Template, load_config, load_template

TEMPLATE_FILES = ("template.yaml", "template.yml", "template.json")


def find_source(path: Path) -> Path:
    """The config file or template that PATH names (a file, or a folder holding one)."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise PlanError(str(path), "", "no such file or folder")
    for name in (*CONFIG_FILES, *TEMPLATE_FILES):
        if (path / name).is_file():
            return path / name
    raise PlanError(str(path), "", f"holds none of {', '.join((*CONFIG_FILES, *TEMPLATE_FILES))}")


def parse_template_text(text: str, source: str) -> Any:
    """A template's text as plain data with intrinsics in long form (JSON or YAML)."""
    from cfn_tools import load_json, load_yaml  # type: ignore[import-untyped]

    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            return load_json(text)
        return load_yaml(text)
    except Exception as e:  # the YAML and JSON loaders raise many kinds
        raise PlanError(source, "", f"cannot be parsed: {e}") from None


def load(
    path: Path, parameters: dict[str, str] | None = None, stack_name: str | None = None
) -> tuple[Path, Template]:
    """Load the deployment at PATH: returns the file read and its template.

    The stack is ``stack_name``, or else named after the folder holding the file.
    """
    source = find_source(path.resolve())
    text = source.read_text()
    stack = stack_name if stack_name is not None else default_stack_name(source)
    if source.name in CONFIG_FILES:
        try:
            doc = tomllib.loads(text) if source.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise PlanError(source.name, "", f"cannot be parsed: {e}") from None
        if parameters:
            raise PlanError("--parameter-overrides", "", f"{source.name} has no parameters")
        return source, load_config(doc, source.parent, source.name, stack_name=stack)
    doc = parse_template_text(text, source.name)
    return source, load_template(doc, source.parent, stack_name=stack, parameters=parameters)


def default_stack_name(source: Path) -> str:
    """The folder holding the template, made a valid stack name: ``my_app`` -> ``my-app``."""
    name = "".join(
        c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in source.parent.name
    )
    name = name.strip("-")
    if not name:
        return "lambdalet"
    if not name[0].isalpha():
        name = "stack-" + name
    return name[:128]
