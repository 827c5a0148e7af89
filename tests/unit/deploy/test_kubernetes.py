"""deploy/kubernetes/ checked offline, since no Kubernetes runs here.

Every built-in resource is validated (strictly: no unknown fields) against the Kubernetes JSON
schemas that kubernetes-validate ships, for the oldest and a recent Kubernetes version we
support. CloudNativePG's ``Cluster`` is a CRD whose schema is not shipped, so it is checked by
hand for the fields lambdalet relies on. Then the references between files: secrets and keys,
Service selectors, probe and scrape ports, ``$(VAR)`` arguments, the database host.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
#: the Kubernetes versions the manifests must validate against
VERSIONS = ("1.29.0", "1.34.0")
#: API groups of custom resources (their operators' CRDs are not in kubernetes-validate)
CRD_GROUPS = {"postgresql.cnpg.io"}
NAMESPACE = "lambdalet"


def load(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def builtin(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["apiVersion"].split("/")[0] not in CRD_GROUPS]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {**by_kind(docs, "Deployment"), **by_kind(docs, "DaemonSet")}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


def validate_all(docs: list[dict[str, Any]], version: str) -> None:
    for doc in builtin(docs):
        kubernetes_validate.validate(doc, version, strict=True)


DOCS = load()


def test_the_manifests_hold_every_part() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in DOCS}
    assert {
        ("Namespace", NAMESPACE),
        ("Secret", "lambdalet-database"),
        ("Cluster", "lambdalet-pg"),
        ("Deployment", "lambdalet-api"),
        ("Service", "lambdalet"),
        ("DaemonSet", "lambdalet-worker"),
    } <= kinds
    for doc in DOCS:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


@pytest.mark.parametrize("version", VERSIONS)
def test_builtin_resources_match_the_kubernetes_schemas(version: str) -> None:
    validate_all(DOCS, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_broken_manifest_is_caught(version: str) -> None:
    broken = load()
    api = by_kind(broken, "Deployment")["lambdalet-api"]
    container(api)["livenessProbe"]["httpGet"]["prot"] = "http"  # a typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_all(broken, version)
    broken = load()
    by_kind(broken, "DaemonSet")["lambdalet-worker"]["spec"]["template"]["spec"]["containers"][0][
        "ports"
    ][0]["containerPort"] = "9300"  # a string where an integer belongs
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_all(broken, version)


def test_secret_references_exist() -> None:
    secrets = by_kind(DOCS, "Secret")
    for name, workload in workloads(DOCS).items():
        for env in container(workload).get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in secrets, (name, ref)
                assert ref["key"] in secrets[ref["name"]]["stringData"], (name, ref)


def test_arguments_only_use_defined_variables() -> None:
    for name, workload in workloads(DOCS).items():
        c = container(workload)
        defined = {env["name"] for env in c.get("env", [])}
        used = {v for arg in c["args"] for v in re.findall(r"\$\((\w+)\)", arg)}
        assert used <= defined, (name, used - defined)


def test_probes_and_scrapes_point_at_a_served_port() -> None:
    for name, workload in workloads(DOCS).items():
        c = container(workload)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (
            ("livenessProbe", "/lambdalet/healthz"),
            ("readinessProbe", "/lambdalet/readyz"),
        ):
            assert c[probe]["httpGet"]["path"] == path, (name, probe)
            assert c[probe]["httpGet"]["port"] in ports, (name, probe)
        notes = workload["spec"]["template"]["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        assert int(notes["prometheus.io/port"]) in ports.values(), name
        assert notes["prometheus.io/path"] == "/metrics"
        served = [a for a in c["args"] if re.fullmatch(r".*:\d+|\d+", a)]
        assert any(str(p) in a for a in served for p in ports.values()), (name, served)


def test_the_service_selects_the_api_pods() -> None:
    service = by_kind(DOCS, "Service")["lambdalet"]
    api = by_kind(DOCS, "Deployment")["lambdalet-api"]
    worker = by_kind(DOCS, "DaemonSet")["lambdalet-worker"]
    selector = service["spec"]["selector"].items()
    assert selector <= api["spec"]["template"]["metadata"]["labels"].items()
    assert not selector <= worker["spec"]["template"]["metadata"]["labels"].items()
    api_ports = {p["name"] for p in container(api)["ports"]}
    assert all(p["targetPort"] in api_ports for p in service["spec"]["ports"])


def test_workers_get_what_runc_needs_and_listen_on_their_pod_ip() -> None:
    worker = by_kind(DOCS, "DaemonSet")["lambdalet-worker"]
    c = container(worker)
    assert c["securityContext"]["privileged"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/sys/fs/cgroup"]]["hostPath"]["path"] == "/sys/fs/cgroup"
    data = c["args"][c["args"].index("--data-dir") + 1]
    assert "hostPath" in volumes[mounts[data]]
    listen = c["args"][c["args"].index("--listen") + 1]
    assert listen.startswith("$(POD_IP):")
    pod_ip = next(e for e in c["env"] if e["name"] == "POD_IP")
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert c["args"][0] == "worker"


def test_the_database_url_names_the_operator_cluster_and_its_user() -> None:
    pg = by_kind(DOCS, "Cluster")["lambdalet-pg"]
    assert pg["apiVersion"] == "postgresql.cnpg.io/v1"
    assert pg["spec"]["instances"] >= 2
    assert pg["spec"]["postgresql"]["synchronous"]["number"] >= 1  # a 202 survives failover
    initdb = pg["spec"]["bootstrap"]["initdb"]
    credentials = by_kind(DOCS, "Secret")[initdb["secret"]["name"]]
    assert credentials["type"] == "kubernetes.io/basic-auth"
    url = urlsplit(by_kind(DOCS, "Secret")["lambdalet-database"]["stringData"]["url"])
    assert url.scheme == "postgresql"
    assert url.hostname == f"{pg['metadata']['name']}-rw.{NAMESPACE}.svc"  # always the primary
    assert url.path == "/" + initdb["database"]
    assert url.username == initdb["owner"] == credentials["stringData"]["username"]
    assert url.password == credentials["stringData"]["password"]
    for workload in workloads(DOCS).values():
        assert container(workload)["args"][1:3] == ["--database", "$(LAMBDALET_DATABASE)"]
