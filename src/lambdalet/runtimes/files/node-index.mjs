// lambdalet: the managed Node.js runtime's entry point (/var/runtime/index.mjs), written
// by lambdalet.runtimes.node.  It runs the real Runtime Interface Client from npm
// (aws-lambda-ric, in ./node_modules) the way Lambda's own index.mjs does: handler from
// _HANDLER, application root LAMBDA_TASK_ROOT.
//
// One addition: before the client loads the function's code it tells the platform where
// Runtime init ends and Function init begins (POST /2018-06-01/runtime/lambdalet/
// function-init, lambdalet's own route), so the timeline shows Init's three parts.  The
// answer is awaited and the connection closed: nothing of it remains.
//
// Another: with LAMBDALET_DEBUG_PORT=N (`lambdalet invoke --debug-port N`) the inspector
// listens on 127.0.0.1:N (the platform forwards the host's port there) and the runtime
// waits, before the client or the function's code loads, until a debugger has attached
// and said "run" (Runtime.runIfWaitingForDebugger, which VS Code sends once it has set
// its breakpoints): breakpoints in the handler bind as its file loads, with no stop on
// this file's first line as --inspect-brk would make.
//
// As on Lambda, ES modules are also looked up in NODE_PATH (./esm-node-path.mjs), when
// it names a folder that exists other than the runtime's own and the task root: a layer's
// nodejs/node_modules, or folders the function named.  (The hooks cost start-up time, so
// a function without such folders goes without them.)
import { existsSync } from "node:fs";
import http from "node:http";
import inspector from "node:inspector";
import module from "node:module";
import { fileURLToPath } from "node:url";

const RIC_MAJOR = @RIC_MAJOR@;

function markFunctionInit() {
  const addr = process.env.AWS_LAMBDA_RUNTIME_API || "";
  const i = addr.lastIndexOf(":");
  if (i <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: addr.slice(0, i),
        port: Number(addr.slice(i + 1)),
        method: "POST",
        path: "/2018-06-01/runtime/lambdalet/function-init",
        agent: false,
        headers: { "Content-Length": "0", Connection: "close" },
        timeout: 1000,
      },
      (res) => {
        res.resume();
        res.on("end", resolve);
        res.on("error", resolve);
      },
    );
    req.on("error", resolve);
    req.on("timeout", () => {
      req.destroy();
      resolve();
    });
    req.end();
  });
}

function waitForDebugger() {
  const port = process.env.LAMBDALET_DEBUG_PORT || "";
  if (!/^[0-9]+$/.test(port)) return;
  try {
    // NODE_OPTIONS=--inspect... may have opened it already
    if (!inspector.url()) inspector.open(Number(port), "127.0.0.1");
    console.log(`lambdalet: waiting for a debugger on port ${port}`);
    inspector.waitForDebugger();
  } catch (err) {
    console.log(`lambdalet: not waiting for a debugger: ${err.message}`);
    return;
  }
  console.log("lambdalet: debugger attached");
}

waitForDebugger();

async function searchNodePath() {
  const runtime = fileURLToPath(new URL(".", import.meta.url)).replace(/\/$/, "");
  const task = process.env.LAMBDA_TASK_ROOT || "/var/task";
  const dirs = (process.env.NODE_PATH || "")
    .split(":")
    .filter((d) => d.startsWith("/") && d !== runtime && !d.startsWith(`${runtime}/`));
  if (!dirs.some((d) => d !== task && existsSync(d))) return;
  const hooks = new URL("./esm-node-path.mjs", import.meta.url);
  if (typeof module.registerHooks === "function") {
    const { resolveSync, setDirs } = await import(hooks.href);
    setDirs(dirs);
    module.registerHooks({ resolve: resolveSync });
  } else {
    module.register(hooks, { data: { dirs } });
  }
}

await searchNodePath();

if (RIC_MAJOR >= 4) {
  // 4.x starts itself when imported, reading _HANDLER and LAMBDA_TASK_ROOT
  await markFunctionInit();
  await import("./node_modules/aws-lambda-ric/index.mjs");
} else {
  const { run } = await import("./node_modules/aws-lambda-ric/dist/index.mjs");
  await markFunctionInit();
  await run(process.env.LAMBDA_TASK_ROOT || process.cwd(), process.env._HANDLER || "");
}
