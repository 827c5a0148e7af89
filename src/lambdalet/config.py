"""Server configuration: one frozen object, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 9000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = Path(".lambdalet-data")


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
    #: a ``python3.X`` function when the host has no Python 3.X: "host" runs it on the
    #: Python running lambdalet (the function log says so), "refuse" rejects it
    python_fallback: str = "host"

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
    def envs_dir(self) -> Path:
        """Per-environment scratch (the /tmp images, bundles)."""
        return self.data_dir / "envs"

    @property
    def runtimes_dir(self) -> Path:
        return self.data_dir / "runtimes"
