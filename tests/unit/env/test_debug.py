"""What a runtime's environment gains to wait for a debugger, and the function setting."""

from __future__ import annotations

from lambdalet.env.debug import DEBUG_PORT_VAR, DEBUGPY_PATH_VAR, port_setting, runtime_debug_env


def test_python_gets_the_port_and_where_debugpy_is() -> None:
    env = runtime_debug_env("python3.12", 5678, "/var/runtime/debugpy")
    assert env == {DEBUG_PORT_VAR: "5678", DEBUGPY_PATH_VAR: "/var/runtime/debugpy"}


def test_node_gets_the_port_and_keeps_the_functions_node_options() -> None:
    # index.mjs opens the inspector itself: NODE_OPTIONS (the function's own) is untouched
    assert runtime_debug_env("nodejs22.x", 9229, None) == {DEBUG_PORT_VAR: "9229"}


def test_other_runtimes_get_nothing() -> None:
    assert runtime_debug_env("provided.al2023", 9229, None) == {}


def test_the_function_setting_is_a_port_or_nothing() -> None:
    assert port_setting({DEBUG_PORT_VAR: "9229"}) == 9229
    assert port_setting({}) is None
    assert port_setting({DEBUG_PORT_VAR: "0"}) is None
    assert port_setting({DEBUG_PORT_VAR: "70000"}) is None
    assert port_setting({DEBUG_PORT_VAR: "-1"}) is None
