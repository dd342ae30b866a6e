"""The Kubernetes path without a cluster: the pod KubeSpawner would create, and the chart values."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from jupyterhub import orm
from kubernetes_asyncio.client import ApiClient

import hub_world as world
from hub_config.kubernetes.spawner import EnclaveKubeSpawner
from hub_config.refusal import WorkspaceRefused

VALUES = Path(__file__).resolve().parents[2] / "hub_config" / "kubernetes" / "values.yaml"


class _User:
    def __init__(self, name: str) -> None:
        self.name = name
        self.id = 1
        self.url = f"/user/{name}/"
        self.escaped_name = name


def _spawner(user: str, project: str) -> EnclaveKubeSpawner:
    spawner = EnclaveKubeSpawner(_mock=True, user=_User(user), orm_spawner=orm.Spawner(name=project))
    spawner.api_token = "not-a-real-token"
    return spawner


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: not-a-token}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.fixture(autouse=True)
def no_cluster_kubeconfig(tmp_path, monkeypatch):
    """A kubeconfig naming an unreachable loopback API server: KubeSpawner loads one at construction,
    and nothing in these tests talks to it (no cluster is needed to build a pod manifest)."""
    from kubernetes_asyncio.config import kube_config

    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """One registry and extracts zone for the module (the board workflow per test would cost seconds)."""
    from enclave.registry.base import dispose_engines
    from enclave.settings import get_settings

    home = tmp_path_factory.mktemp("k8s") / "var"
    home.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENCLAVE_HOME", str(home))
        mp.delenv("ENCLAVE_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        yield world.build(home)
        dispose_engines()
    get_settings.cache_clear()


def _pod(user: str, project: str):  # noqa: ANN202
    from enclave.settings import get_settings

    async def build():  # KubeSpawner creates its API client on the running event loop
        spawner = _spawner(user, project)
        grant = await spawner.grant()
        spawner.apply_grant(grant, get_settings().extracts)
        pod = await spawner.get_pod_manifest()
        # The JSON the API server would receive (camelCase), whatever mix of models and dicts built it.
        return grant, spawner, ApiClient().sanitize_for_serialization(pod)

    return asyncio.run(build())


def _containers(pod: dict) -> dict[str, dict]:
    return {c["name"]: c for c in pod["spec"]["containers"]}


def _mounts(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def test_pod_has_server_kernel_and_gateway_containers(small_world):
    _, _, pod = _pod("alice", "alpha")
    assert set(_containers(pod)) == {"notebook", "kernels", "gateway"}
    assert pod["spec"].get("shareProcessNamespace") in (None, False)


def test_only_the_kernel_container_mounts_the_extract(small_world):
    grant, spawner, pod = _pod("alice", "alpha")
    containers = _containers(pod)
    kernel = _mounts(containers["kernels"])
    assert kernel["/data"]["subPath"] == "alpha/1" and kernel["/data"]["readOnly"] is True
    assert kernel["/home/alice"]["name"] == "home"
    assert kernel["/etc/enclave/jupyter"]["readOnly"] is True
    assert set(kernel) == {"/data", "/home/alice", "/etc/enclave/jupyter", "/run/kernels", "/tmp"}
    server = _mounts(containers["notebook"])
    assert set(server) == {"/home/alice", "/etc/enclave/jupyter", "/run/jupyter", "/run/kernels", "/tmp"}
    assert set(_mounts(containers["gateway"])) == {"/run/jupyter", "/tmp"}
    # The server's socket volume is shared with the gateway only; /tmp is a volume of each container's own.
    assert server["/run/jupyter"]["name"] == _mounts(containers["gateway"])["/run/jupyter"]["name"]
    assert len({m["/tmp"]["name"] for m in (kernel, server, _mounts(containers["gateway"]))}) == 3
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["enclave-extracts"]["persistentVolumeClaim"]["readOnly"] is True
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "claim-alice--alpha" == spawner.pvc_name


def test_home_claims_differ_per_user_and_project(small_world):
    async def names():
        return {_spawner(u, p).pvc_name for u, p in [("alice", "alpha"), ("bob", "alpha"), ("bob", "beta")]}

    assert len(asyncio.run(names())) == 3


def test_kernel_runs_as_the_researcher_and_the_server_under_its_own_uid(small_world):
    from hub_config.sandbox import server_uid

    grant, spawner, pod = _pod("alice", "alpha")
    spec = pod["spec"]
    containers = _containers(pod)
    kernel_ctx = containers["kernels"]["securityContext"]
    server_ctx = containers["notebook"]["securityContext"]
    gateway_ctx = containers["gateway"]["securityContext"]
    assert (kernel_ctx["runAsUser"], kernel_ctx["runAsGroup"]) == (grant.uid, grant.gid)
    workspace = server_uid("alice", "alpha")
    assert (server_ctx["runAsUser"], server_ctx["runAsGroup"]) == (workspace, workspace) != (grant.uid, grant.gid)
    assert gateway_ctx["runAsUser"] == spawner.gateway_uid not in (grant.uid, workspace)
    for ctx in (kernel_ctx, server_ctx, gateway_ctx):
        assert ctx["runAsNonRoot"] and ctx["readOnlyRootFilesystem"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["fsGroup"] == workspace  # the home's workspace group
    assert spec["automountServiceAccountToken"] is False
    assert pod["metadata"]["labels"]["enclave/project"] == "alpha"


def test_no_token_reaches_the_kernel_container_and_the_proxy_reaches_the_gateway(small_world):
    _, spawner, pod = _pod("alice", "alpha")
    containers = _containers(pod)
    server_env = {e["name"]: e.get("value") for e in containers["notebook"]["env"]}
    kernel_env = {e["name"]: e.get("value") for e in containers["kernels"]["env"]}
    assert server_env["JUPYTERHUB_API_TOKEN"] == spawner.api_token
    assert not [k for k in kernel_env if k.startswith(("JUPYTERHUB", "JPY")) or "TOKEN" in k]
    assert spawner.api_token not in json.dumps(containers["kernels"])
    assert kernel_env["ENCLAVE_WORKSPACE_EXTRACT_VERSION"] == "1" and kernel_env["PYTHONNOUSERSITE"] == "1"
    assert server_env["JUPYTER_CONFIG_DIR"] == "/etc/enclave/jupyter"
    assert "--ServerApp.sock=/run/jupyter/server.sock" in containers["notebook"]["args"]
    assert "--KernelProvisionerFactory.default_provisioner_name=enclave-sandbox" in containers["notebook"]["args"]
    # The port the proxy reaches (declared by KubeSpawner on the notebook container) is the gateway's.
    assert [p["containerPort"] for p in containers["notebook"]["ports"]] == [spawner.port]
    assert f"--port={spawner.port}" in containers["gateway"]["command"]
    assert "--upstream=/run/jupyter/server.sock" in containers["gateway"]["command"]
    assert not containers["gateway"].get("ports")


@pytest.mark.parametrize(("user", "project", "reason"), [
    ("carol", "alpha", "not a member"), ("alice", "gamma", "suspended"),
    ("alice", "delta", "revoked"), ("alice", "epsilon", "expired"),
])
def test_same_refusals_as_the_local_spawner(small_world, user, project, reason):
    async def start():
        await _spawner(user, project)._start()

    with pytest.raises(WorkspaceRefused) as refused:
        asyncio.run(start())
    assert reason in refused.value.reason


def test_values_deny_all_egress_and_use_the_enclave_spawner():
    values = yaml.safe_load(VALUES.read_text())
    policy = values["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True and policy["egress"] == []
    assert set(policy["egressAllowRules"].values()) == {False}
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is True
    assert values["hub"]["config"]["JupyterHub"]["spawner_class"].endswith("EnclaveKubeSpawner")
    assert values["singleuser"]["storage"]["dynamic"]["pvcNameTemplate"] == "claim-{username}--{servername}"
    assert values["singleuser"]["allowPrivilegeEscalation"] is False
