"""Only configuration loading reads the process environment (issue 16: one composition root).

The server's configuration is read into a frozen ``ServerConfig`` by ``cli_server.py`` and
passed down; the CLI's settings are read by ``ops/settings.py`` and passed down.  Any other module
that reads ``os.environ`` / ``os.getenv`` hides configuration from both: this scan over
``src/`` names it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lambdalet

SRC = Path(lambdalet.__file__).parent

#: modules allowed to read the environment, and why
ALLOWED = {
    # moved out of cli.py with the serve/worker/doctor options (cli.py only wires subcommands)
    "cli_server.py": "the server's configuration loader (flags and LAMBDALET_ACCESS_KEY_ID/...)",
    "ops/settings.py": "the CLI's settings loader",
    # programs run inside a sandbox, in the function's environment, not modules of lambdalet
    "runtimes/files/lambdalet_launch.py": "in-sandbox launcher",
    "runtimes/files/lambdalet_zygote.py": "in-sandbox zygote",
    "config.py": "HostPaths.from_environ: the host-path variables (cache, pyenv, uv, XDG)",
    # hand the server's own environment on to a child tool (pip, npm, make), minus what
    # would redirect it: not configuration of lambdalet
    "runtimes/installcmd.py": "pip's environment (the server's, without pip redirects)",
    "runtimes/noderic.py": "npm's environment for building aws-lambda-ric",
}

_READERS = {"environ", "environb", "getenv", "getenvb"}


def environment_reads(source: str) -> list[int]:
    """Lines of ``source`` that read the process environment through ``os``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _READERS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in _READERS for alias in node.names)
        ):
            lines.append(node.lineno)
    return sorted(lines)


def _reads_by_module() -> dict[str, list[int]]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        lines = environment_reads(path.read_text())
        if lines:
            found[path.relative_to(SRC).as_posix()] = lines
    return found


def test_the_scan_sees_every_way_of_reading() -> None:
    source = (
        "import os\n"
        "from os import getenv\n"
        "a = os.environ.get('A')\n"
        "b = os.getenv('B')\n"
        "c = dict(os.environ)\n"
        "d = environ = {}\n"
    )
    assert environment_reads(source) == [2, 3, 4, 5]


def test_only_configuration_loaders_read_the_environment() -> None:
    found = _reads_by_module()
    intruders = {module: lines for module, lines in found.items() if module not in ALLOWED}
    assert not intruders, (
        "read the environment in configuration loading (ServerConfig, ops/settings.py) and "
        f"pass the value down; these modules read it themselves (module: lines): {intruders}"
    )


def test_the_allow_list_names_only_modules_that_read() -> None:
    stale = sorted(set(ALLOWED) - set(_reads_by_module()))
    assert not stale, f"these modules no longer read the environment; drop them: {stale}"
