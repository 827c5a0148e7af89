"""The workers of a cluster as ``lambdalet ps`` shows them (``GET /lambdalet/admin/workers``).

In cluster mode each environment the admin API lists names its worker (``Worker``: the worker's
id); single-process servers say null. ``ps`` adds a WORKER column only when some environment
has one, labelled with the worker's address when ``/lambdalet/admin/workers`` answers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any


def worker_of(env: Mapping[str, Any]) -> str | None:
    """The id of the worker holding ``env``, or None (single-process mode)."""
    worker = env.get("Worker")
    return str(worker) if worker else None


def admin_workers(endpoint: str) -> list[dict[str, Any]] | None:
    """``GET /lambdalet/admin/workers``, or None when the server does not answer it."""
    url = endpoint.rstrip("/") + "/lambdalet/admin/workers"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    workers = body.get("Workers") if isinstance(body, dict) else None
    return [w for w in workers if isinstance(w, dict)] if isinstance(workers, list) else None


def worker_labels(
    envs: Sequence[Mapping[str, Any]], workers: Sequence[Mapping[str, Any]] | None
) -> list[str] | None:
    """Each environment's WORKER cell: its worker's address (``(dead)`` added once the cluster
    has declared it dead), else the worker's short id, ``-`` for none; None when no environment
    has a worker (a single-process server), so the column is left out."""
    if not any(map(worker_of, envs)):
        return None
    known = {str(w.get("Id")): w for w in workers or ()}
    cells = []
    for env in envs:
        worker = worker_of(env)
        if worker is None:
            cells.append("-")
            continue
        info = known.get(worker, {})
        label = str(info.get("Address") or worker[:8])
        cells.append(label + " (dead)" if info.get("State") == "dead" else label)
    return cells


def worker_column(endpoint: str, envs: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """``worker_labels`` for a server: asks it for its workers only when the column shows."""
    if not any(map(worker_of, envs)):
        return None
    return worker_labels(envs, admin_workers(endpoint))
