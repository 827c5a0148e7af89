"""Server configuration: one frozen object, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 9000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = Path(".lambdalet-data")
MIB = 1024 * 1024
#: Lambda's default code storage quota per region (75 GB)
DEFAULT_CODE_STORAGE_LIMIT = 75 * 1024 * MIB
#: set (to anything) to run the sandbox agent on Python even where agent.c can be compiled
PYTHON_AGENT_ENV = "LAMBDALET_PYTHON_AGENT"


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    region: str = "us-east-1"
    account_id: str = "123456789012"
    #: "auto" picks the strongest backend that works here; "runc" or "process" force one.
    backend: str = "auto"
    #: runc sandboxes kept built and running so a cold start only attaches the function
    spare_sandboxes: int = 2
    #: seconds an idle (frozen) environment is kept before it is shut down
    idle_timeout_s: float = 300.0
    #: on-demand Init limit (seconds)
    init_timeout_s: float = 10.0
    #: how long an environment stays thawed after an invoke before it is frozen (0: at once)
    freeze_delay_s: float = 0.01
    #: add Init Duration to Billed Duration on cold starts (Lambda's rule since 2025-08-01)
    bill_init: bool = True
    #: account-level concurrency limit
    account_concurrency: int = 1000
    #: multiplies every asynchronous-invocation retry delay (1 min, 2 min, throttle back-off);
    #: tests shrink it, e.g. 0.001 turns a minute into 60 ms
    async_delay_scale: float = 1.0
    #: asynchronous events run at once at most (beyond: they wait in the queue)
    async_workers: int = 32
    #: (access key id, secret access key) pairs the API accepts SigV4 signatures of;
    #: required when binding beyond loopback, optional (then enforced) on loopback
    credentials: tuple[tuple[str, str], ...] = ()
    #: each function's log file rotates past this size ...
    log_max_bytes: int = 4 * MIB
    #: ... keeping this many older files: a function's logs take at most 4 MB x 3
    log_backups: int = 2
    #: total zipped code of every function version and layer version (TotalCodeSize);
    #: past it, CodeStorageExceededException
    code_storage_limit: int = DEFAULT_CODE_STORAGE_LIMIT
    #: bytes kept allocated in the data directory and given back when a delete finds the disk
    #: full, so that deleting always works
    space_reserve_bytes: int = 8 * MIB
    #: seconds a code-download URL (GetFunction's Code.Location) stays valid, as AWS's 10 min
    code_url_ttl_s: int = 600
    #: registries (host or host:port) pulled from over plain HTTP besides loopback ones
    insecure_registries: tuple[str, ...] = ()
    #: Docker config.json / containers auth.json with registry credentials; None: skopeo's
    #: defaults ($REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json,
    #: ~/.docker/config.json)
    registry_auth_file: Path | None = None
    #: a ``python3.X`` function when the host has no Python 3.X: "host" runs it on the
    #: Python running lambdalet (the function log says so), "refuse" rejects it
    python_fallback: str = "host"
    #: runc sandboxes run agent.py, not the compiled agent (from $LAMBDALET_PYTHON_AGENT)
    python_agent: bool = False

    @property
    def db_path(self) -> Path:
        return self.data_dir / "lambdalet.sqlite3"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def code_dir(self) -> Path:
        """Unpacked code of functions and layers, one folder per code hash."""
        return self.data_dir / "code"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def trash_dir(self) -> Path:
        """Unpacked code no longer referenced, moved aside until deleted."""
        return self.data_dir / "trash"

    @property
    def envs_dir(self) -> Path:
        """Per-environment scratch (the /tmp images, bundles)."""
        return self.data_dir / "envs"

    @property
    def images_dir(self) -> Path:
        """Pulled container images: the OCI layout and the unpacked roots (images/cache.py)."""
        return self.data_dir / "images"

    @property
    def runtimes_dir(self) -> Path:
        return self.data_dir / "runtimes"
