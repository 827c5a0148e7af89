"""The WORKER column of ``lambdalet ps``: only in cluster mode, labelled by address."""

from __future__ import annotations

from lambdalet.ops.workers import worker_labels

W1 = "0b7e4c1e-1111-4a4a-9c9c-000000000001"
W2 = "0b7e4c1e-2222-4a4a-9c9c-000000000002"
WORKERS = [
    {"Id": W1, "Address": "10.0.0.1:9300", "State": "alive"},
    {"Id": W2, "Address": "10.0.0.2:9300", "State": "dead"},
]


def test_a_single_process_server_gets_no_column() -> None:
    envs = [{"id": "e1", "Worker": None}, {"id": "e2"}]
    assert worker_labels(envs, None) is None
    assert worker_labels(envs, WORKERS) is None
    assert worker_labels([], WORKERS) is None


def test_each_environment_shows_its_workers_address() -> None:
    envs = [{"id": "e1", "Worker": W1}, {"id": "e2", "Worker": W2}, {"id": "e3", "Worker": W1}]
    assert worker_labels(envs, WORKERS) == [
        "10.0.0.1:9300",
        "10.0.0.2:9300 (dead)",
        "10.0.0.1:9300",
    ]


def test_an_unknown_worker_shows_its_short_id() -> None:
    envs = [{"id": "e1", "Worker": W1}, {"id": "e2", "Worker": None}]
    assert worker_labels(envs, None) == [W1[:8], "-"]
    assert worker_labels(envs, [WORKERS[1]]) == [W1[:8], "-"]
