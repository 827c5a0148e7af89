"""Node.js runtimes on the real aws-lambda-ric, through boto3: handler resolution as AWS
does it, handler styles, the context object, error shapes, and the process-level
failures (uncaught exceptions, unhandled rejections) of both client generations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.harness import Server, create, invoke
from tests.integration.node import NODE_RUNTIMES, node_runtimes  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("node_runtimes")]

REPORT_ENV = """
  return {
    v: process.versions.node.split('.')[0],
    rid: context.awsRequestId,
    name: context.functionName,
    version: context.functionVersion,
    memory: context.memoryLimitInMB,
    arn: context.invokedFunctionArn,
    group: context.logGroupName,
    stream: context.logStreamName,
    remaining: context.getRemainingTimeInMillis(),
    cc: context.clientContext ? context.clientContext.Custom || context.clientContext.custom : null,
    env: {
      NODE_PATH: process.env.NODE_PATH,
      NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
      AWS_EXECUTION_ENV: process.env.AWS_EXECUTION_ENV,
      LAMBDA_TASK_ROOT: process.env.LAMBDA_TASK_ROOT,
      _HANDLER: process.env._HANDLER,
      TZ: process.env.TZ,
      trace: process.env._X_AMZN_TRACE_ID,
    },
    cwd: process.cwd(),
    execArgv: process.execArgv,
    event,
  };
"""


@pytest.mark.parametrize("runtime", NODE_RUNTIMES)
def test_async_esm_handler_context_and_environment(lam: Any, server: Server, runtime: str) -> None:
    import base64
    import urllib.request

    code = f"export const handler = async (event, context) => {{{REPORT_ENV}}};\n"
    name = create(lam, {"index.mjs": code}, handler="index.handler", runtime=runtime, Timeout=7)
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    r = invoke(lam, name, {"a": [1, 2]}, ClientContext=cc)
    assert r.function_error is None, r.payload
    out = r.json()
    major = runtime.removeprefix("nodejs").removesuffix(".x")
    assert out["v"] == major
    assert out["rid"] == r.request_id
    assert out["name"] == name and out["version"] == "$LATEST"
    assert out["memory"] == "128"
    assert out["arn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert out["group"] == f"/aws/lambda/{name}" and out["stream"]
    assert 5000 < out["remaining"] <= 7000
    assert out["cc"] == {"k": "v"}
    assert out["event"] == {"a": [1, 2]}
    assert out["cwd"] == "/var/task"
    env = out["env"]
    assert env["NODE_PATH"] == (
        f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:"
        "/var/runtime/node_modules:/var/runtime:/var/task"
    )
    assert env["NODE_EXTRA_CA_CERTS"] == "/var/runtime/ca-cert.pem"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{runtime}"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["_HANDLER"] == "index.handler"
    assert env["TZ"] == ":UTC"
    assert env["trace"].startswith("Root=1-")
    # Lambda's flags: gc exposed, heap sized from the memory size
    assert "--expose-gc" in out["execArgv"]
    assert "--max-old-space-size=116" in out["execArgv"], out["execArgv"]
    # Init in three parts on the environment's timeline: platform, runtime, function
    with urllib.request.urlopen(f"{server.url}/lambdalet/admin/environments") as resp:
        (env,) = [e for e in json.loads(resp.read())["Environments"] if e["function"] == name]
    events = [e["event"] for e in env["timeline"]]
    assert events[:4] == ["init_start", "runtime_start", "function_init_start", "init_done"], events


@pytest.mark.parametrize(
    ("files", "handler", "expected"),
    [
        ({"app.js": "exports.handler = async () => 'cjs';"}, "app.handler", "cjs"),
        (
            {
                "app.js": "export const handler = async () => 'esm-by-type';",
                "package.json": '{"type": "module"}',
            },
            "app.handler",
            "esm-by-type",
        ),
        ({"app.mjs": "export const handler = async () => 'mjs';"}, "app.handler", "mjs"),
        ({"app.cjs": "module.exports.handler = async () => 'cjs-ext';"}, "app.handler", "cjs-ext"),
        (
            {"src/handlers/app.mjs": "export const deep = {fn: async () => 'nested'};"},
            "src/handlers/app.deep.fn",
            "nested",
        ),
    ],
    ids=["cjs", "esm-by-type", "mjs", "cjs-ext", "nested"],
)
def test_handler_resolution(lam: Any, files: dict[str, str], handler: str, expected: str) -> None:
    name = create(lam, files, handler=handler, runtime="nodejs22.x")
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    assert r.json() == expected


def test_handler_resolution_errors(lam: Any) -> None:
    missing = create(
        lam, {"app.mjs": "export const other = 1;"}, handler="app.handler", runtime="nodejs22.x"
    )
    r = invoke(lam, missing)
    assert r.function_error == "Unhandled"
    assert r.json()["errorType"] == "Runtime.HandlerNotFound"
    no_module = create(lam, {"app.mjs": "x"}, handler="nothere.handler", runtime="nodejs22.x")
    r = invoke(lam, no_module)
    assert r.json()["errorType"] == "Runtime.ImportModuleError"
    syntax = create(
        lam,
        {"app.mjs": "export const handler = async () => {"},
        handler="app.handler",
        runtime="nodejs22.x",
    )
    r = invoke(lam, syntax)
    assert r.json()["errorType"] == "Runtime.UserCodeSyntaxError"


@pytest.mark.parametrize("runtime", ["nodejs20.x", "nodejs22.x"])
def test_callback_handler_waits_for_the_event_loop(lam: Any, runtime: str) -> None:
    code = """
let ran = false;
exports.handler = (event, context, callback) => {
  if (event.check) return callback(null, ran);
  setTimeout(() => { ran = true; }, 200);
  // sent once the event loop is empty (callbackWaitsForEmptyEventLoop), after the timer
  callback(null, {style: 'callback'});
};
"""
    name = create(lam, {"app.js": code}, handler="app.handler", runtime=runtime)
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    assert r.json() == {"style": "callback"}
    assert invoke(lam, name, {"check": True}).json() is True


def test_callback_handler_is_refused_on_nodejs24(lam: Any) -> None:
    code = "exports.handler = (event, context, callback) => callback(null, 'x');\n"
    name = create(lam, {"app.js": code}, handler="app.handler", runtime="nodejs24.x")
    r = invoke(lam, name)
    assert r.function_error == "Unhandled"
    assert r.json()["errorType"] == "Runtime.CallbackHandlerDeprecated", r.payload


@pytest.mark.parametrize("runtime", NODE_RUNTIMES)
def test_thrown_error_shape(lam: Any, runtime: str) -> None:
    code = """
class BadThing extends Error { constructor(m) { super(m); this.name = 'BadThing'; } }
export const handler = async () => { throw new BadThing('boom'); };
"""
    name = create(lam, {"index.mjs": code}, handler="index.handler", runtime=runtime)
    r = invoke(lam, name)
    assert r.status == 200 and r.function_error == "Unhandled"
    body = r.json()
    assert body["errorType"] == "BadThing" and body["errorMessage"] == "boom"
    assert isinstance(body["trace"], list) and body["trace"][0] == "BadThing: boom"
    # a reported error keeps the environment warm
    r2 = invoke(lam, name)
    assert "Init Duration" not in r2.log, r2.log


@pytest.mark.parametrize("runtime", ["nodejs20.x", "nodejs24.x"])
def test_uncaught_exception_ends_the_invoke_and_resets(lam: Any, runtime: str) -> None:
    code = """
let n = 0;
export const handler = async (event) => {
  n += 1;
  if (event.crash) {
    setTimeout(() => { throw new TypeError('uncaught in a timer'); }, 10);
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
  if (event.reject) {
    Promise.reject(new Error('nobody catches me'));
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
  return n;
};
"""
    name = create(lam, {"index.mjs": code}, handler="index.handler", runtime=runtime, Timeout=10)
    assert invoke(lam, name).json() == 1
    r = invoke(lam, name, {"crash": True})
    assert r.function_error == "Unhandled", r.payload
    body = r.json()
    if runtime == "nodejs24.x":
        # 4.x installs no handler: Node dies, the platform reports the exit
        assert body["errorType"] == "Runtime.ExitError", body
    else:
        assert body["errorType"] == "TypeError" and body["errorMessage"] == "uncaught in a timer"
    # the runtime process is gone: the next invoke starts a fresh one
    assert invoke(lam, name).json() == 1
    r = invoke(lam, name, {"reject": True})
    assert r.function_error == "Unhandled", r.payload
    if runtime == "nodejs24.x":
        assert r.json()["errorType"] == "Runtime.ExitError", r.payload
    else:
        assert r.json()["errorType"] == "Runtime.UnhandledPromiseRejection", r.payload
    assert invoke(lam, name).json() == 1


def test_layer_modules_resolve_through_node_path(lam: Any) -> None:
    """A layer's nodejs/node_modules and nodejs/nodeNN/node_modules are found by require(),
    the versioned folder first, as NODE_PATH orders them on Lambda."""
    from tests.integration.harness import make_zip, unique

    layer = lam.publish_layer_version(
        LayerName=unique("nodelib"),
        Content={
            "ZipFile": make_zip(
                {
                    "nodejs/node_modules/shared/index.js": "module.exports = 'generic';",
                    "nodejs/node_modules/only/index.js": "module.exports = 'only-generic';",
                    "nodejs/node22/node_modules/shared/index.js": "module.exports = 'node22';",
                }
            )
        },
        CompatibleRuntimes=["nodejs22.x"],
    )
    code = "exports.handler = async () => [require('shared'), require('only')];\n"
    name = create(
        lam,
        {"app.js": code},
        handler="app.handler",
        runtime="nodejs22.x",
        Layers=[layer["LayerVersionArn"]],
    )
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    assert r.json() == ["node22", "only-generic"]


def test_es_modules_resolve_through_node_path_too(lam: Any) -> None:
    """As Lambda's Node 18+ runtimes: an ES module handler imports a layer's packages
    (NODE_PATH's order), which Node alone does only for require().  nodejs20.x has no
    module.registerHooks: its hooks run on Node's loader thread."""
    from tests.integration.harness import make_zip, unique

    layer = lam.publish_layer_version(
        LayerName=unique("esmlib"),
        Content={
            "ZipFile": make_zip(
                {
                    "nodejs/node_modules/shared/index.js": "module.exports = 'generic';",
                    "nodejs/node_modules/only/package.json": '{"type": "module"}',
                    "nodejs/node_modules/only/index.js": "export default 'only-esm';",
                    "nodejs/node20/node_modules/shared/index.js": "module.exports = 'node20';",
                }
            )
        },
        CompatibleRuntimes=["nodejs20.x"],
    )
    code = (
        "import shared from 'shared';\nimport only from 'only';\n"
        "export const handler = async () => {\n"
        "  const missing = await import('lambdalet-nope').catch((e) => e.code);\n"
        "  return [shared, only, missing];\n"
        "};\n"
    )
    name = create(
        lam,
        {"app.mjs": code},
        handler="app.handler",
        runtime="nodejs20.x",
        Layers=[layer["LayerVersionArn"]],
    )
    r = invoke(lam, name)
    assert r.function_error is None, r.payload
    assert r.json() == ["node20", "only-esm", "ERR_MODULE_NOT_FOUND"]
