"""The launcher: which runtime a function runs on, and how its process starts.

Joins the runtimes package (what is installed where, the environment variables)
to the environment's :class:`~lambdalet.env.launch.Launcher` seam.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from lambdalet.config import ServerConfig
from lambdalet.env.launch import LaunchPlan, RuntimeMounts
from lambdalet.model import FunctionRecord
from lambdalet.runtimes import envvars
from lambdalet.runtimes.provided import InvalidEntrypoint, find_bootstrap, is_provided_runtime
from lambdalet.runtimes.python import (
    PythonRuntime,
    awslambdaric_version,
    ensure_python_runtime,
    installed_python,
    sdk_version,
)
from lambdalet.sandbox.base import SandboxBackend, SandboxView


def _version_arn(region: str, label: str) -> str:
    digest = hashlib.sha256(f"lambdalet:{label}".encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


class RuntimeLauncher:
    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._python: dict[str, PythonRuntime] = {}

    async def mounts(self, function: FunctionRecord) -> RuntimeMounts:
        region = self._config.region
        if is_provided_runtime(function.runtime):
            label = f"provided:{function.runtime.removeprefix('provided.') or 'al'}.lambdalet"
            return RuntimeMounts(None, None, label, _version_arn(region, label))
        notes: list[str] = []
        rt = self._python.get(function.runtime)
        if rt is None:
            before = await asyncio.to_thread(installed_python, self._config, function.runtime)
            started = time.monotonic()
            rt = await ensure_python_runtime(self._config, function.runtime)
            self._python[function.runtime] = rt
            if before is None:  # the first Init waited for the install: its log says so
                notes.append(
                    f"lambdalet: installed the {function.runtime} runtime (awslambdaric "
                    f"{awslambdaric_version(rt.install.minor)}, boto3 "
                    f"{sdk_version(rt.install.minor)}) in {time.monotonic() - started:.1f} s"
                )
        if rt.note:
            notes.append(rt.note)
        label = f"python:{rt.python_version}.lambdalet"
        return RuntimeMounts(
            rt.runtime_dir,
            rt.lang_dir,
            label,
            _version_arn(region, label),
            notes=tuple(notes),
            lang_layers=rt.lang_layers,
        )

    async def prime_spares(self, backend: SandboxBackend) -> bool:
        """Tell the backend's spares which runtime to pre-start before any function ran.

        The Python runtime of the host's own Python, when it is installed already (no pip
        run at start): the spares mount it and start it, so the first function's first
        invoke is as fast as later ones.  True when the backend was told.
        """
        view = backend.spare_view()
        if view is None:
            return False
        runtime_id = f"python{sys.version_info.major}.{sys.version_info.minor}"
        install = await asyncio.to_thread(installed_python, self._config, runtime_id)
        if install is None:
            return False
        probe = FunctionRecord(
            name="lambdalet-spare",
            version="$LATEST",
            arn=(
                f"arn:aws:lambda:{self._config.region}:{self._config.account_id}"
                ":function:lambdalet-spare"
            ),
            runtime=runtime_id,
            handler="lambda_function.lambda_handler",
            role=f"arn:aws:iam::{self._config.account_id}:role/lambdalet-spare",
            memory_mb=128,
            timeout_s=3,
            ephemeral_mb=512,
            environment={},
            layers=(),
            code_dir=Path(view.task_root),
            code_sha256="",
            code_size=0,
            revision_id="",
        )
        mounts = await self.mounts(probe)
        plan = self.plan(probe, view, log_stream="", init_type="on-demand")
        backend.expect_runtime(mounts.runtime_dir, mounts.lang_dir, plan.env, mounts.lang_layers)
        return True

    def plan(
        self, function: FunctionRecord, view: SandboxView, log_stream: str, init_type: str
    ) -> LaunchPlan:
        if is_provided_runtime(function.runtime):
            env = envvars.runtime_environment(
                function, view, log_stream=log_stream, init_type=init_type
            )
            try:
                boot = find_bootstrap(
                    function.code_dir, [layer.code_dir for layer in function.layers], view
                )
            except InvalidEntrypoint:
                # the message without its "RequestId: <id> Error: " head, which the invoke adds
                detail = InvalidEntrypoint.message("").split(" Error: ", 1)[-1]
                return LaunchPlan((), env, view.task_root, ("Runtime.InvalidEntrypoint", detail))
            return LaunchPlan(boot.argv(), env, view.task_root)
        rt = self._python[function.runtime]
        env = envvars.runtime_environment(
            function,
            view,
            log_stream=log_stream,
            init_type=init_type,
            python_version=rt.python_version,
            extra_path=rt.extra_path(view),
            python_sdk_dir=rt.sdk_dir(view),
        )
        return LaunchPlan(rt.argv(view), env, view.task_root)

    def extension_env(
        self, function: FunctionRecord, view: SandboxView, init_type: str
    ) -> Mapping[str, str]:
        runtime_env = envvars.runtime_environment(
            function, view, log_stream="", init_type=init_type
        )
        return envvars.extension_environment(runtime_env)
