"""The ``runc`` backend: one OCI container per sandbox, with our agent as PID 1.

Layout per sandbox under ``config.envs_dir/<env_id>/``::

    bundle/config.json   the OCI config (built by :func:`oci_config`, pure)
    tmp.img, tmp/        sparse ext4 image of ephemeral_mb, loop-mounted, = /tmp
    agent.pid            host pid of the agent (runc --pid-file)
    slirp4netns.*        host-access helper's pid and messages

Shared under ``config.data_dir``: ``runc/`` (our own ``runc --root``),
``rootfs/<hash>/`` (read-only base, see rootfs.py), ``rapid/<hash>/`` (agent.py,
agent.c and the agent compiled from it) and ``tmp-templates/<mb>.img``.

runc's and the agent's stdout/stderr are a pipe the server drains, keeping the last
4 KiB for error messages (:class:`OutputTail`): never a file a function could fill.

The host talks to the agent over a SOCK_SEQPACKET socketpair that is the
agent's stdin (runc passes stdio through to a detached container).  Each
spawned process writes stdout+stderr into a pipe the host created and passed
over that socket, so output reaches the event loop without being copied by
the agent.  Cgroups are created by runc from ``cgroupsPath`` and operated on
by file writes (cgroups.py).

One job per module:

* :mod:`.oci`: the config.json builder (pure) and the sandbox's view;
* :mod:`.link`: the agent protocol (encoder and decoder) and the connection;
* :mod:`.mounts`, :mod:`.attach`: ``/tmp`` images, read-only binds, a spare's attach points;
* :mod:`.state`: a sandbox's states and the moves between them (pure);
* :mod:`.prestart`: the runtime a sandbox may pre-start;
* :mod:`.sandbox`: one sandbox; :mod:`.host`: what it asks of its backend;
* :mod:`.spares`: the spare pool; :mod:`.sweep`: cleaning up after a crashed run;
* :mod:`.agentfiles`: installing (and compiling) the agent; :mod:`.command`: runc itself;
* :mod:`.backend`: the backend, tying them together.
"""

from __future__ import annotations

from .agentfiles import agent_interpreter, compile_agent, install_agent
from .backend import RuncBackend, capabilities, protections
from .link import AgentLink, agent_message, decode, encode
from .mounts import TmpImages, mount_point_of, mounts_under
from .oci import (
    SANDBOX_VIEW,
    BundlePlan,
    Mount,
    attach_sources,
    cgroup_relpath,
    cpu_shares,
    instance_tag,
    lang_source,
    nproc_limit,
    oci_config,
    opt_mount,
)
from .sandbox import RuncSandbox
from .state import SandboxState
from .sweep import MARKER

__all__ = [
    "MARKER",
    "SANDBOX_VIEW",
    "AgentLink",
    "BundlePlan",
    "Mount",
    "RuncBackend",
    "RuncSandbox",
    "SandboxState",
    "TmpImages",
    "agent_interpreter",
    "agent_message",
    "attach_sources",
    "capabilities",
    "cgroup_relpath",
    "compile_agent",
    "cpu_shares",
    "decode",
    "encode",
    "install_agent",
    "instance_tag",
    "lang_source",
    "mount_point_of",
    "mounts_under",
    "nproc_limit",
    "oci_config",
    "opt_mount",
    "protections",
]
