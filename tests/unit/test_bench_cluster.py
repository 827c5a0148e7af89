"""The cluster benchmark's verdicts (bench/cluster.py ``targets``), on made-up figures."""

from __future__ import annotations

from typing import Any

from bench.cluster import targets


def run(tput: dict[tuple[int, bool], float], p50: dict[tuple[int, bool], float]) -> dict[str, Any]:
    return {
        "single": {"warm": {"p50_ms": 1.0}, "throughput": {"invokes_per_s": 1000.0}},
        "cluster": [
            {
                "workers": n,
                "combined": combined,
                "warm": {"p50_ms": p50[(n, combined)]},
                "throughput": {"invokes_per_s": t},
            }
            for (n, combined), t in tput.items()
        ],
    }


def test_each_target_is_judged_on_its_own_set_up() -> None:
    # API replica + workers scale 2x and route within 1.2x; combined nodes scale 1.5x, route 0.9x
    r = run(
        {(1, False): 1000, (2, False): 2000, (1, True): 1000, (2, True): 1500},
        {(1, False): 1.2, (2, False): 1.2, (1, True): 0.9, (2, True): 0.9},
    )
    assert targets(r) == {
        "tput_2_workers_ge_1.7x_1": [2.0, 1.7, True],
        "tput_2_combined_nodes_ge_1.7x_1": [1.5, 1.7, False],
        "routed_warm_p50_le_1.3x_single": [1.2, 1.3, True],
    }


def test_a_slow_hop_or_flat_scaling_is_not_met() -> None:
    r = run({(1, False): 1000, (2, False): 1100}, {(1, False): 1.5, (2, False): 1.5})
    t = targets(r)
    assert t["tput_2_workers_ge_1.7x_1"] == [1.1, 1.7, False]
    assert t["routed_warm_p50_le_1.3x_single"] == [1.5, 1.3, False]
    assert "tput_2_combined_nodes_ge_1.7x_1" not in t
