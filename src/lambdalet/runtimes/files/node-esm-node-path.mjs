// lambdalet: module resolution hooks of the managed Node.js runtime
// (/var/runtime/esm-node-path.mjs, written by lambdalet.runtimes.node).
//
// As Lambda's Node.js runtimes (18 and later) do: a bare ES module specifier that Node's own
// resolution does not find is looked up in the folders of NODE_PATH, in order, so an ES
// module handler can `import` packages from its layers' nodejs/node_modules.  Node itself
// searches NODE_PATH only for require().  index.mjs installs these hooks, in-thread with
// module.registerHooks where Node has it (22.15+), else with module.register.

let dirs = [];

export function setDirs(list) {
  dirs = list;
}

// module.register's start-up hook: the folders come as its data
export function initialize(data) {
  setDirs((data && data.dirs) || []);
}

// "pkg", "@scope/pkg/sub": not relative, absolute or a URL (node:, file:, data:)
const isBare = (s) => !/^(\.{0,2}\/|[A-Za-z][A-Za-z0-9+.-]*:)/.test(s);
const notFound = (e) => e !== null && typeof e === "object" && e.code === "ERR_MODULE_NOT_FOUND";
// resolving from a file in the folder's parent finds <parent>/node_modules/<pkg>; from
// "<dir>/" itself Node walks up from <dir>/node_modules to <dir>/../node_modules, so a
// NODE_PATH entry ending in node_modules is searched as the folder of packages it is
const within = (dir) => new URL(`file://${dir.endsWith("/") ? dir : `${dir}/`}`).href;

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (!notFound(err) || !isBare(specifier)) throw err;
    for (const dir of dirs) {
      try {
        return await nextResolve(specifier, { ...context, parentURL: within(dir) });
      } catch (e) {
        if (!notFound(e)) throw e;
      }
    }
    throw err;
  }
}

export function resolveSync(specifier, context, nextResolve) {
  try {
    return nextResolve(specifier, context);
  } catch (err) {
    if (!notFound(err) || !isBare(specifier)) throw err;
    for (const dir of dirs) {
      try {
        return nextResolve(specifier, { ...context, parentURL: within(dir) });
      } catch (e) {
        if (!notFound(e)) throw e;
      }
    }
    throw err;
  }
}
