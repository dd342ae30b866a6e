"""The Kubernetes path without a cluster: the pod KubeSpawner would create, and the chart values."""
from __future__ import annotations

import asyncio
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


def test_pod_mounts_only_its_extract_read_only_and_its_home(small_world):
    grant, spawner, pod = _pod("alice", "alpha")
    container = pod["spec"]["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data"]["subPath"] == "alpha/1" and mounts["/data"]["readOnly"] is True
    assert mounts["/home/alice"]["name"] == "home"
    assert mounts["/etc/enclave/jupyter"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["enclave-extracts"]["persistentVolumeClaim"]["readOnly"] is True
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "claim-alice--alpha" == spawner.pvc_name
    assert set(mounts) == {"/data", "/home/alice", "/etc/enclave/jupyter", "/tmp"}


def test_home_claims_differ_per_user_and_project(small_world):
    async def names():
        return {_spawner(u, p).pvc_name for u, p in [("alice", "alpha"), ("bob", "alpha"), ("bob", "beta")]}

    assert len(asyncio.run(names())) == 3


def test_pod_runs_as_the_users_uid_and_projects_gid_without_privileges(small_world):
    grant, _, pod = _pod("alice", "alpha")
    spec = pod["spec"]
    ctx = spec["containers"][0]["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsGroup"]) == (grant.uid, grant.gid)
    assert ctx["runAsNonRoot"] and ctx["readOnlyRootFilesystem"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["fsGroup"] == grant.gid
    assert spec["automountServiceAccountToken"] is False
    assert pod["metadata"]["labels"]["enclave/project"] == "alpha"
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["JUPYTER_CONFIG_DIR"] == "/etc/enclave/jupyter" and env["PYTHONNOUSERSITE"] == "1"
    assert env["ENCLAVE_WORKSPACE_EXTRACT_VERSION"] == "1"


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
