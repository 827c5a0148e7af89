"""What a deploy created and the state of what it updated, put back when a step fails."""

from __future__ import annotations

import contextlib
import urllib.request
from typing import Any

from lambdalet.ops.deploy_common import Say, wait_updated


class Rollback:
    """What a deploy changed, so a failure half-way puts the functions back as they were.

    Functions it created are deleted; functions it updated get their configuration, code and
    tags back.  Published layer versions and function versions stay (they are immutable and
    unused by the restored functions); pruning runs only after every function deployed.
    """

    def __init__(self, lam: Any, say: Say) -> None:
        self._lam = lam
        self._say = say
        self.created: list[str] = []
        #: name -> (configuration, code zip or None if unchanged, tags) before the deploy
        self.updated: dict[str, tuple[dict[str, Any], bytes | None, dict[str, str]]] = {}

    def remember(
        self, name: str, current: dict[str, Any], code_url: str | None, tags: dict[str, str]
    ) -> None:
        """Before the first change to an existing function."""
        if name in self.updated:
            return
        code = None
        if code_url:
            with urllib.request.urlopen(code_url, timeout=60) as r:
                code = r.read()
        self.updated[name] = (current, code, dict(tags))

    def run(self) -> None:
        lam, say = self._lam, self._say
        for name in reversed(self.created):
            say(f"rolling back: deleting function {name}")
            with contextlib.suppress(Exception):
                lam.delete_function(FunctionName=name)
        for name, (config, code, tags) in self.updated.items():
            say(f"rolling back: restoring function {name}")
            try:
                lam.update_function_configuration(FunctionName=name, **_restorable(config))
                wait_updated(lam, name)
                if code is not None:
                    lam.update_function_code(FunctionName=name, ZipFile=code)
                    wait_updated(lam, name)
                arn = config["FunctionArn"]
                now = lam.list_tags(Resource=arn).get("Tags", {})
                added = [k for k in now if k not in tags]
                if added:
                    lam.untag_resource(Resource=arn, TagKeys=added)
                changed = {k: v for k, v in tags.items() if now.get(k) != v}
                if changed:
                    lam.tag_resource(Resource=arn, Tags=changed)
            except Exception as e:  # keep restoring the others; say what could not be
                say(f"rolling back {name} failed: {e}")


def _restorable(config: dict[str, Any]) -> dict[str, Any]:
    """UpdateFunctionConfiguration arguments that give a function this configuration back."""
    return {
        "Runtime": config.get("Runtime"),
        "Handler": config.get("Handler"),
        "MemorySize": config.get("MemorySize"),
        "Timeout": config.get("Timeout"),
        "Environment": {"Variables": config.get("Environment", {}).get("Variables", {})},
        "Layers": [layer["Arn"] for layer in config.get("Layers", [])],
        "Description": config.get("Description", ""),
        "Role": config.get("Role"),
    }
