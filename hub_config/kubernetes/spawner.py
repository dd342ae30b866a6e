"""EnclaveKubeSpawner: the Kubernetes path (Zero to JupyterHub) with the same entitlement checks.

At every start it asks ``enclave.entitlements.check_workspace`` exactly as the local sandbox
spawner does, then shapes the pod from the grant. The pod has the same three parts as the local
layout (``hub_config.spawner``), one container each, in one pod that does not share its process
namespace:

- ``notebook`` (KubeSpawner's own container): the Jupyter server, under the workspace's server
  uid, with the server's hub token; it sees the home (to serve notebooks), the kernels' volume
  and its own socket volume; not the extract. It listens on a unix socket only.
- ``kernels``: the kernel broker and the kernels (``hub_config.kernels.pod_broker``), as the
  researcher's uid and project gid; the extract read-only at ``/data`` (a sub-path of the shared
  extracts volume), the home, the kernels' volume (ZeroMQ ipc sockets); no token, no server socket.
- ``gateway``: the policy gateway (``python -m hub_config.gateway``) as the enclave's service
  uid, on the pod's port (the proxy's target), forwarding to the server's socket volume.

Every container: no capabilities, no privilege escalation, a read-only root file system, the
runtime's seccomp profile. The pod: a home volume per (user, project) (KubeSpawner's
``claim-{username}--{servername}`` claim) owned by the workspace group (``fsGroup``), no
service-account token, and labels that the egress-deny NetworkPolicy of ``values.yaml`` selects.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from kubespawner import KubeSpawner
from tornado import web
from traitlets import Integer, Unicode, default

from hub_config import sandbox, single_user
from hub_config.refusal import WorkspaceRefused

EXTRACT_VOLUME = "enclave-extracts"
HOME_VOLUME = "home"
SERVER_SOCKET_VOLUME = "server-socket"
KERNELS_VOLUME = "kernels"
GATEWAY_PORT = 8888


def _locked_down(uid: int, gid: int) -> dict:
    """The security context of every container of a workspace pod."""
    return {
        "runAsUser": uid,
        "runAsGroup": gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


class EnclaveKubeSpawner(KubeSpawner):
    """KubeSpawner whose pod is defined by the user's workspace grant for the server's project."""

    extracts_claim = Unicode(
        "enclave-extracts", help="PersistentVolumeClaim holding the extracts zone (written by provisioning only)."
    ).tag(config=True)
    jupyter_config_map = Unicode(
        "enclave-jupyter-config",
        help="ConfigMap with hub_config/single_user/jupyter_config, mounted read-only as JUPYTER_CONFIG_DIR.",
    ).tag(config=True)
    gateway_uid = Integer(
        999, help="The enclave service account's uid: the gateway container runs as it (never a workspace uid)."
    ).tag(config=True)

    @default("pvc_name_template")
    def _default_pvc_name_template(self) -> str:
        return "claim-{username}--{servername}"  # one home per (user, project)

    @default("storage_pvc_ensure")
    def _default_storage_pvc_ensure(self) -> bool:
        return True

    @default("automount_service_account_token")
    def _default_no_token(self) -> bool:
        return False

    @default("allow_privilege_escalation")
    def _default_no_escalation(self) -> bool:
        return False

    async def rename(self, old_name: str, new_name: str) -> None:
        raise web.HTTPError(403, "Workspaces are named after their project and cannot be renamed.")

    async def grant(self):  # noqa: ANN201 - enclave.entitlements.WorkspaceGrant
        from enclave.entitlements import Refused, check_workspace

        if not self.name:
            raise WorkspaceRefused("(none)", "open a project's workspace from the home page")
        try:
            return await asyncio.to_thread(check_workspace, self.user.name, self.name)
        except Refused as refused:
            raise WorkspaceRefused(self.name, refused.reason) from None

    def apply_grant(self, grant, extracts_zone: Path) -> None:  # noqa: ANN001
        """Shape the pod for ``grant`` (no cluster needed: the test builds the manifest from here)."""
        extract_subpath = str(Path(grant.extract_path).resolve().relative_to(Path(extracts_zone).resolve()))
        home = f"/home/{grant.username}"
        server_uid = sandbox.server_uid(grant.username, grant.project)
        base_url = f"/user/{self.user.name}/{self.name}/"
        # The notebook container: the Jupyter server, its own uid; the workspace group owns the home.
        self.uid = server_uid
        self.gid = server_uid
        self.fs_gid = server_uid
        self.supplemental_gids = []
        self.working_dir = home
        self.port = GATEWAY_PORT  # the proxy's target is the gateway; the server listens on its socket only
        self.cmd = ["jupyterhub-singleuser"]
        self.args = [
            f"--ServerApp.sock={sandbox.SERVER_SOCKET}",
            "--ServerApp.sock_mode=0660",  # the gateway connects through the workspace group (fsGroup)
            "--ServerApp.authorizer_class=hub_config.single_user.authorizer.EnclaveAuthorizer",
            "--ServerApp.contents_manager_class=hub_config.single_user.contents.EnclaveContentsManager",
            "--ServerApp.kernel_websocket_connection_class="
            "hub_config.single_user.output_limit.EnclaveKernelWebsocketConnection",
            "--KernelProvisionerFactory.default_provisioner_name=enclave-sandbox",
            "--KernelManager.transport=ipc",
            "--ServerApp.terminals_enabled=False",
            *single_user.limit_args(grant.limits),  # the board's per-project limits, as in the sandbox
        ]
        self.volumes = [
            {"name": EXTRACT_VOLUME, "persistentVolumeClaim": {"claimName": self.extracts_claim, "readOnly": True}},
            {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": self.pvc_name}},
            {"name": "jupyter-config", "configMap": {"name": self.jupyter_config_map}},
            {"name": SERVER_SOCKET_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": KERNELS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            {"name": "server-tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "kernel-tmp", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "gateway-tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ]
        config_mount = {"name": "jupyter-config", "mountPath": sandbox.JUPYTER_CONFIG_DIR, "readOnly": True}
        self.volume_mounts = [
            {"name": HOME_VOLUME, "mountPath": home},
            config_mount,
            {"name": SERVER_SOCKET_VOLUME, "mountPath": sandbox.SERVER_SOCKET_DIR},
            {"name": KERNELS_VOLUME, "mountPath": sandbox.KERNELS_DIR},
            {"name": "server-tmp", "mountPath": "/tmp"},
        ]
        self.container_security_context = _locked_down(server_uid, server_uid)
        self.extra_pod_config = {**self.extra_pod_config, "shareProcessNamespace": False}
        self.extra_labels = {**self.extra_labels, "enclave/workspace": "true", "enclave/project": grant.project}
        self.extra_annotations = {**self.extra_annotations, "enclave/extract-version": str(grant.extract_version)}
        common_env = {
            "HOME": home,
            "JUPYTER_CONFIG_DIR": sandbox.JUPYTER_CONFIG_DIR,
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
            "PYTHONNOUSERSITE": "1",
            "ENCLAVE_WORKSPACE_PROJECT": grant.project,
            "ENCLAVE_WORKSPACE_EXTRACT_VERSION": str(grant.extract_version),
            "ENCLAVE_WORKSPACE_DATA": sandbox.DATA_DIR,
            "ENCLAVE_CONFIG": "/dev/null",
        }
        self.environment = {**self.environment, **common_env,
                            "ENCLAVE_KERNEL_BROKER": f"{sandbox.KERNELS_DIR}/broker.sock"}
        kernel_env = {**common_env, "USER": grant.username, "ENCLAVE_KERNEL_BROKER": f"{sandbox.KERNELS_DIR}/broker.sock"}
        self.extra_containers = [
            {
                "name": "kernels",
                "image": self.image,
                "command": ["python", "-m", "hub_config.kernels.pod_broker"],
                "workingDir": home,
                "env": [{"name": k, "value": v} for k, v in sorted(kernel_env.items())],
                "securityContext": _locked_down(grant.uid, grant.gid),
                "volumeMounts": [
                    {"name": EXTRACT_VOLUME, "mountPath": sandbox.DATA_DIR, "subPath": extract_subpath, "readOnly": True},
                    {"name": HOME_VOLUME, "mountPath": home},
                    config_mount,
                    {"name": KERNELS_VOLUME, "mountPath": sandbox.KERNELS_DIR},
                    {"name": "kernel-tmp", "mountPath": "/tmp"},
                ],
            },
            {
                "name": "gateway",
                "image": self.image,
                "command": ["python", "-m", "hub_config.gateway", f"--port={GATEWAY_PORT}",
                            f"--upstream={sandbox.SERVER_SOCKET}", f"--base-url={base_url}"],
                # No port of its own: KubeSpawner declares "notebook-port" (self.port) on the notebook
                # container, which the chart's NetworkPolicy names; the pod shares one network namespace,
                # so that declared port is this container's listener (the server listens on no port).
                "env": [{"name": "ENCLAVE_SERVER_TOKEN", "value": self.api_token or ""}],
                "securityContext": _locked_down(self.gateway_uid, self.gateway_uid),
                "volumeMounts": [
                    {"name": SERVER_SOCKET_VOLUME, "mountPath": sandbox.SERVER_SOCKET_DIR},
                    {"name": "gateway-tmp", "mountPath": "/tmp"},
                ],
            },
        ]

    async def _start(self):  # noqa: ANN202 - KubeSpawner's
        from enclave.settings import get_settings

        grant = await self.grant()
        self.apply_grant(grant, get_settings().extracts)
        return await super()._start()
