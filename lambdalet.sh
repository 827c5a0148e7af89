#!/usr/bin/env bash
# lambdalet: set this checkout up, then serve or test.
#
#   ./lambdalet.sh serve [args...]   set up, then exec .venv/bin/lambdalet serve [args...]
#   ./lambdalet.sh test [pytest args...]
#                                    set up, then ruff check, ruff format --check, mypy,
#                                    pytest tests/unit, pytest tests/integration,
#                                    pytest tests/cluster
#   ./lambdalet.sh integration [pytest args...]
#                                    set up, then pytest tests/integration only (CI's
#                                    second, rootless run: .ci/rootless-run)
#
# "Set up" is idempotent and quick when nothing changed:
#   1. OS packages (runc iproute2 e2fsprogs util-linux slirp4netns passt curl; gcc and
#      libc6-dev to build the compiled sandbox agent; chromium and
#      chromium-driver for the dashboard's browser test): installed
#      with apt-get when root; otherwise the missing ones are listed and the weaker
#      'process' backend runs instead.
#      As an ordinary user, what rootless sandboxes need is checked, and the one
#      command to run once with sudo is printed when something is missing.
#   2. .venv from a Python >= 3.11 (the real binary behind `python3`, not a pyenv shim);
#      python3-venv is installed when Debian's venv module is missing.
#   3. pip install -e '.[dev]' whenever pyproject.toml changed since the last install.
#   4. The managed Python runtime (awslambdaric from PyPI) for that Python, in the data
#      dir (--data-dir of serve, default .lambdalet-data).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ORIG_PWD=$PWD
VENV="$ROOT/.venv"
PY_STAMP="$VENV/.lambdalet-pyproject.sha256"
# cmake g++ make autoconf automake libtool: the native part of npm's aws-lambda-ric (Node runtimes)
# postgresql: the binaries the cluster tests start their own throw-away server from (tests/cluster/pg.py);
#   nothing uses the cluster service the package may start on install
APT_PACKAGES=(runc iproute2 e2fsprogs util-linux slirp4netns passt curl gcc libc6-dev golang-github-containers-common chromium chromium-driver
    skopeo umoci buildah docker-registry busybox-static openssl cmake g++ make autoconf automake libtool
    postgresql)
# newuidmap/newgidmap: rootless sandboxes, for CI's run as an ordinary user (.ci/rootless-run)
APT_PACKAGES+=(uidmap)
APT_UPDATED=0

say() { printf 'lambdalet.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }
have_dpkg() { command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    apt-get install -y -qq "$@"
}

setup_os_packages() {
    if ! have_dpkg; then
        say "no apt/dpkg here: make sure ${APT_PACKAGES[*]} are installed, or the weaker 'process' backend runs instead"
        return 0
    fi
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if is_root; then
        say "installing ${missing[*]}"
        if ! apt_install "${missing[@]}"; then
            say "warning: apt-get could not install ${missing[*]}; the weaker 'process' backend may run instead (see 'lambdalet doctor')"
        fi
    else
        say "missing packages: ${missing[*]}"
        say "(as root: apt-get install -y ${missing[*]}); until then the weaker 'process' backend runs instead (no isolation, see 'lambdalet doctor')"
    fi
}

# Not root: say whether rootless sandboxes can run (user namespaces, newuidmap/newgidmap,
# /etc/subuid and /etc/subgid ranges, cgroup delegation) and print the one command a
# user with sudo runs once to enable them.  Never needs sudo itself.
check_rootless() {
    is_root && return 0
    local user fixes=() problems=()
    user=$(id -un)
    if ! command -v newuidmap >/dev/null 2>&1 || ! command -v newgidmap >/dev/null 2>&1; then
        problems+=("newuidmap/newgidmap missing (package uidmap)")
        fixes+=("apt-get install -y uidmap")
    fi
    if ! grep -qE "^($user|$(id -u)):[0-9]+:[0-9]+" /etc/subuid 2>/dev/null ||
        ! grep -qE "^($user|$(id -u)):[0-9]+:[0-9]+" /etc/subgid 2>/dev/null; then
        problems+=("no /etc/subuid or /etc/subgid range for $user")
        fixes+=("usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $user")
    fi
    if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ] ||
        [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = 0 ]; then
        problems+=("user namespaces are disabled for ordinary users")
        fixes+=("sysctl -w kernel.unprivileged_userns_clone=1 user.max_user_namespaces=28633")
    fi
    if [ "${#problems[@]}" -ne 0 ]; then
        say "rootless sandboxes unavailable: ${problems[*]}"
        local joined
        joined=$(printf ' && %s' "${fixes[@]}")
        say "run once (needs sudo): sudo sh -c '${joined# && }'"
        say "until then the weaker 'process' backend runs (no isolation, see 'lambdalet doctor')"
        return 0
    fi
    if [ -f /sys/fs/cgroup/cgroup.controllers ] &&
        [ -w "/sys/fs/cgroup/user.slice/user-$(id -u).slice/user@$(id -u).service" ]; then
        say "rootless sandboxes: ready (a delegated cgroup v2 subtree exists)"
    else
        say "rootless sandboxes: ready; no delegated cgroup v2 subtree (cgroup v1 host, or no systemd user session): memory, CPU and freezing use weaker substitutes (see 'lambdalet doctor' and docs/security.md)"
    fi
}

# Print the real interpreter behind $1 (pyenv shims resolved) if it is Python >= 3.11.
real_python() {
    "$1" -c 'import os, sys
if sys.version_info < (3, 11):
    raise SystemExit(1)
print(os.path.realpath(sys.executable))' 2>/dev/null
}

find_python() {
    local cand path real
    for cand in python3 python3.13 python3.12 python3.11 /usr/bin/python3 /usr/local/bin/python3; do
        path=$(command -v "$cand" 2>/dev/null) || continue
        if real=$(real_python "$path") && [ -n "$real" ]; then
            printf '%s\n' "$real"
            return 0
        fi
    done
    return 1
}

venv_ok() {
    [ -x "$VENV/bin/python" ] && real_python "$VENV/bin/python" >/dev/null &&
        "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1
}

setup_venv() {
    venv_ok && return 0
    local py
    py=$(find_python) || die "lambdalet needs Python >= 3.11 (python3 on PATH); install it (Debian 12: apt-get install -y python3 python3-venv)"
    if [ -e "$VENV" ]; then
        say "$VENV is not usable (no Python >= 3.11 with pip in it); creating it again"
        rm -rf "$VENV"
    fi
    say "creating .venv with $py"
    if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        if is_root && have_dpkg; then
            say "the venv module is missing; installing python3-venv"
            apt_install python3-venv || die "apt-get install python3-venv failed"
            "$py" -m venv "$VENV" || die "cannot create $VENV with $py"
        else
            die "cannot create $VENV with $py: install the venv module (Debian: apt-get install -y python3-venv, as root)"
        fi
    fi
    rm -f "$PY_STAMP"
}

setup_project() {
    local want
    want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
    if [ "$(cat "$PY_STAMP" 2>/dev/null || true)" = "$want" ] && [ -x "$VENV/bin/lambdalet" ] &&
        (cd / && "$VENV/bin/python" -c 'import lambdalet') >/dev/null 2>&1; then
        return 0
    fi
    say "installing lambdalet and its dev tools into .venv (pip install -e '.[dev]')"
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e '.[dev]') ||
        die "pip install -e '.[dev]' failed"
    printf '%s\n' "$want" >"$PY_STAMP"
}

# The data dir named by serve's arguments (default .lambdalet-data, relative to the caller's cwd).
data_dir_of() {
    local dir=".lambdalet-data"
    while [ "$#" -gt 0 ]; do
        case "$1" in
        --data-dir=*) dir=${1#--data-dir=} ;;
        --data-dir)
            [ "$#" -ge 2 ] && dir=$2
            shift
            ;;
        esac
        shift
    done
    printf '%s\n' "$dir"
}

setup_runtime() {
    # Lazily retried by the server on first use, so a failure here is only a warning.
    (cd "$ORIG_PWD" && "$VENV/bin/python" -m lambdalet.runtimes.python --install --data-dir "$1") ||
        say "warning: the managed Python runtime is not installed yet; python functions will try again on first use"
}

setup_node_runtimes() {
    # Node.js and the built aws-lambda-ric go to the per-user cache (~/.cache/lambdalet), so
    # only a machine's first run pays for the client's native build (minutes).  `serve`
    # leaves this to the server, which installs a Node runtime on first use (progress in
    # its log); the tests need them all and run it here, outside pytest's per-test timeout.
    say "installing the Node.js runtimes (first time on this machine: a few minutes)"
    (cd "$ORIG_PWD" && "$VENV/bin/python" -m lambdalet.runtimes.node --install --data-dir "$1") ||
        say "warning: the Node.js runtimes are not installed; nodejs functions will try again on first use"
}

setup() {
    setup_os_packages
    check_rootless
    setup_venv
    setup_project
    setup_runtime "$1"
}

run_checks() {
    cd "$ROOT"
    export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
    local failed=() rc
    step() {
        local name=$1
        shift
        say "== $name"
        rc=0
        "$@" || rc=$?
        if [ "$rc" -eq 5 ] && [ "${1##*/}" = python ]; then
            say "$name: no tests collected (pytest exit status 5) -- counted as a failure"
        fi
        [ "$rc" -eq 0 ] || failed+=("$name (exit status $rc)")
    }
    step "ruff check" "$VENV/bin/ruff" check src tests scripts
    step "ruff format --check" "$VENV/bin/ruff" format --check src tests scripts
    step "mypy" "$VENV/bin/mypy"
    step "pytest tests/unit" "$VENV/bin/python" -m pytest tests/unit "$@"
    step "pytest tests/integration" "$VENV/bin/python" -m pytest tests/integration "$@"
    # the cluster (real PostgreSQL, 2 API replicas, 3 workers killed and restarted): ~2 min
    step "pytest tests/cluster" "$VENV/bin/python" -m pytest tests/cluster "$@"
    if [ "${#failed[@]}" -ne 0 ]; then
        say "FAILED: ${failed[*]}"
        return 1
    fi
    say "all checks passed"
}

usage() {
    cat >&2 <<'EOF'
usage: ./lambdalet.sh serve [lambdalet serve args...]   set up, then run the server
       ./lambdalet.sh test [pytest args...]             set up, then run every check
       ./lambdalet.sh integration [pytest args...]      set up, then only the integration tests
EOF
    exit 2
}

main() {
    [ "$#" -ge 1 ] || usage
    local cmd=$1
    shift
    case "$cmd" in
    serve)
        setup "$(data_dir_of "$@")"
        cd "$ORIG_PWD"
        exec "$VENV/bin/lambdalet" serve "$@"
        ;;
    test)
        setup "$ROOT/.lambdalet-data"
        setup_node_runtimes "$ROOT/.lambdalet-data"
        run_checks "$@"
        ;;
    integration)
        setup "$ROOT/.lambdalet-data"
        setup_node_runtimes "$ROOT/.lambdalet-data"
        cd "$ROOT"
        exec "$VENV/bin/python" -m pytest tests/integration "$@"
        ;;
    -h | --help | help) usage ;;
    *)
        say "unknown command: $cmd"
        usage
        ;;
    esac
}

main "$@"
