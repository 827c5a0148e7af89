"""The launcher: which runtime a function runs on, and how its process starts.

Joins the runtimes package (what is installed where, the environment variables)
to the environment's :class:`~lambdalet.env.launch.Launcher` seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from lambdalet.config import ServerConfig
from lambdalet.control.progress import Progress
from lambdalet.env.debug import runtime_debug_env
from lambdalet.env.launch import LaunchPlan, RuntimeMounts
from lambdalet.images import service as images
from lambdalet.images.cache import ImageCache, PulledImage, PullError
from lambdalet.images.spec import ImageConfig, merged_env
from lambdalet.model import FunctionRecord
from lambdalet.runtimes import envvars
from lambdalet.runtimes.node import NodeRuntime, ensure_node_runtime, is_node_runtime
from lambdalet.runtimes.provided import InvalidEntrypoint, find_bootstrap, is_provided_runtime
from lambdalet.runtimes.python import (
    DEBUGPY_VERSION,
    PythonRuntime,
    awslambdaric_version,
    ensure_python_runtime,
    install_debugpy,
    installed_python,
    sdk_version,
)
from lambdalet.sandbox.base import SandboxBackend, SandboxError, SandboxView

log = logging.getLogger(__name__)


def images_cache(config: ServerConfig) -> ImageCache:
    return images.cache_for(config)


def _version_arn(region: str, label: str) -> str:
    digest = hashlib.sha256(f"lambdalet:{label}".encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


#: the variables of a zip function's environment an image's ENV may replace
IMAGE_ENV_DEFAULTS = ("PATH", "LD_LIBRARY_PATH", "LANG", "TZ", "PWD")
IMAGE_RUNTIME_LABEL = "image.lambdalet"


class RuntimeLauncher:
    def __init__(
        self,
        config: ServerConfig,
        images: ImageCache | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._config = config
        self._python: dict[str, PythonRuntime] = {}
        self._node: dict[str, NodeRuntime] = {}
        self._images = images if images is not None else images_cache(config)
        self._pulled: dict[str, PulledImage] = {}
        #: long work (a first runtime install) is announced here, for `lambdalet` and logs
        self.progress = progress or Progress()

    def _progress(self, what: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self.progress.running(what)

    async def _ensure_python(self, runtime_id: str) -> PythonRuntime:
        """The runtime, installed on first use with progress in the server log and the
        admin API's /progress (which `lambdalet invoke` prints)."""
        install = await asyncio.to_thread(installed_python, self._config, runtime_id)
        if install is not None:
            return await ensure_python_runtime(self._config, runtime_id)
        what = f"installing the {runtime_id} runtime (awslambdaric from PyPI, first use)"
        log.info("%s", what)
        started = time.monotonic()
        async with self._progress(what):
            rt = await ensure_python_runtime(self._config, runtime_id)
        log.info("%s runtime ready in %.1f s", runtime_id, time.monotonic() - started)
        return rt

    async def mounts(self, function: FunctionRecord) -> RuntimeMounts:
        region = self._config.region
        if function.image is not None:
            try:
                pulled = await images.ensure(self._images, function)
            except PullError as e:  # the cached image was removed and cannot be had again
                raise SandboxError(f"the image {function.image.uri} is unavailable: {e}") from e
            self._pulled[function.image.digest] = pulled
            label = IMAGE_RUNTIME_LABEL
            return RuntimeMounts(
                None, None, label, _version_arn(region, label), image_rootfs=pulled.rootfs
            )
        if is_provided_runtime(function.runtime):
            label = f"provided:{function.runtime.removeprefix('provided.') or 'al'}.lambdalet"
            return RuntimeMounts(None, None, label, _version_arn(region, label))
        if is_node_runtime(function.runtime):
            node = self._node.get(function.runtime)
            if node is None:
                node = await ensure_node_runtime(self._config, function.runtime)
                self._node[function.runtime] = node
            label = f"nodejs:{node.major}.lambdalet"
            return RuntimeMounts(
                node.runtime_dir, node.lang_dir, label, _version_arn(region, label)
            )
        notes: list[str] = []
        rt = self._python.get(function.runtime)
        if rt is None:
            before = await asyncio.to_thread(installed_python, self._config, function.runtime)
            started = time.monotonic()
            rt = await self._ensure_python(function.runtime)
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

    def _image_plan(
        self, function: FunctionRecord, view: SandboxView, log_stream: str, init_type: str
    ) -> LaunchPlan:
        """ENTRYPOINT + CMD (or ImageConfig's), WORKDIR, the image's ENV under the
        function's and Lambda's variables."""
        assert function.image is not None
        pulled = self._pulled[function.image.digest]
        override = ImageConfig.from_json(function.image.config)
        cwd = pulled.run.cwd(override)
        lambda_env = envvars.runtime_environment(
            function, view, log_stream=log_stream, init_type=init_type
        )
        lambda_env["PWD"] = cwd
        for key in ("_HANDLER", "AWS_EXECUTION_ENV"):
            lambda_env.pop(key, None)  # an image has no handler setting nor managed runtime
        env = merged_env(pulled.run, lambda_env, function.environment, IMAGE_ENV_DEFAULTS)
        argv = pulled.run.argv(override)
        if not argv:
            return LaunchPlan(
                (),
                env,
                cwd,
                ("Runtime.InvalidEntrypoint", "The image has no ENTRYPOINT or CMD to run."),
            )
        return LaunchPlan(argv, env, cwd)

    def plan(
        self, function: FunctionRecord, view: SandboxView, log_stream: str, init_type: str
    ) -> LaunchPlan:
        if function.image is not None:
            return self._image_plan(function, view, log_stream, init_type)
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
        if is_node_runtime(function.runtime):
            node = self._node[function.runtime]
            env = envvars.runtime_environment(
                function, view, log_stream=log_stream, init_type=init_type
            )
            return LaunchPlan(node.argv(view), env, view.task_root)
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

    async def with_debugger(
        self, plan: LaunchPlan, function: FunctionRecord, view: SandboxView, port: int
    ) -> LaunchPlan:
        debugpy_path: str | None = None
        rt = self._python.get(function.runtime)
        if rt is not None:
            started = time.monotonic()
            log.info("making sure debugpy %s is in the %s runtime", DEBUGPY_VERSION, rt.runtime_id)
            async with self._progress(f"installing debugpy {DEBUGPY_VERSION} for {rt.runtime_id}"):
                folder = await asyncio.to_thread(install_debugpy, rt)
            log.info("debugpy ready in %.1f s", time.monotonic() - started)
            debugpy_path = f"{view.runtime_dir}/{folder.name}"
        extra = runtime_debug_env(function.runtime, port, debugpy_path)
        return replace(plan, env={**plan.env, **extra})

    def extension_env(
        self, function: FunctionRecord, view: SandboxView, init_type: str
    ) -> Mapping[str, str]:
        if function.image is not None:
            plan = self._image_plan(function, view, "", init_type)
            return envvars.extension_environment(plan.env)
        runtime_env = envvars.runtime_environment(
            function, view, log_stream="", init_type=init_type
        )
        return envvars.extension_environment(runtime_env)
