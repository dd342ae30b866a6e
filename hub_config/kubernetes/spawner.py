"""EnclaveKubeSpawner: the Kubernetes path (Zero to JupyterHub) with the same entitlement checks.

At every start it asks ``enclave.entitlements.check_workspace`` exactly as the local sandbox
spawner does, then shapes the pod from the grant: the project's extract version mounted
read-only at ``/data`` (a sub-path of the shared extracts volume), a home volume per
(user, project) (KubeSpawner's ``claim-{username}--{servername}`` claim), the per-user uid and
per-project gid, no capabilities, no privilege escalation, a read-only root file system, no
service-account token, and labels that the egress-deny NetworkPolicy of ``values.yaml`` selects.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from kubespawner import KubeSpawner
from tornado import web
from traitlets import Unicode, default

from hub_config import single_user
from hub_config.refusal import WorkspaceRefused

EXTRACT_VOLUME = "enclave-extracts"
HOME_VOLUME = "home"


class EnclaveKubeSpawner(KubeSpawner):
    """KubeSpawner whose pod is defined by the user's workspace grant for the server's project."""

    extracts_claim = Unicode(
        "enclave-extracts", help="PersistentVolumeClaim holding the extracts zone (written by provisioning only)."
    ).tag(config=True)
    jupyter_config_map = Unicode(
        "enclave-jupyter-config",
        help="ConfigMap with hub_config/single_user/jupyter_config, mounted read-only as JUPYTER_CONFIG_DIR.",
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
        self.uid = grant.uid
        self.gid = grant.gid
        self.fs_gid = grant.gid
        self.supplemental_gids = []
        self.working_dir = home
        self.volumes = [
            {"name": EXTRACT_VOLUME, "persistentVolumeClaim": {"claimName": self.extracts_claim, "readOnly": True}},
            {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": self.pvc_name}},
            {"name": "jupyter-config", "configMap": {"name": self.jupyter_config_map}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
        ]
        self.volume_mounts = [
            {"name": EXTRACT_VOLUME, "mountPath": "/data", "subPath": extract_subpath, "readOnly": True},
            {"name": HOME_VOLUME, "mountPath": home},
            {"name": "jupyter-config", "mountPath": "/etc/enclave/jupyter", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ]
        self.container_security_context = {
            "runAsUser": grant.uid,
            "runAsGroup": grant.gid,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        self.args = single_user.limit_args(grant.limits)  # the board's per-project limits, as in the sandbox
        self.extra_labels = {**self.extra_labels, "enclave/workspace": "true", "enclave/project": grant.project}
        self.extra_annotations = {**self.extra_annotations, "enclave/extract-version": str(grant.extract_version)}
        self.environment = {
            **self.environment,
            "HOME": home,
            "JUPYTER_CONFIG_DIR": "/etc/enclave/jupyter",
            "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
            "PYTHONNOUSERSITE": "1",
            "ENCLAVE_WORKSPACE_PROJECT": grant.project,
            "ENCLAVE_WORKSPACE_EXTRACT_VERSION": str(grant.extract_version),
            "ENCLAVE_WORKSPACE_DATA": "/data",
        }

    async def _start(self):  # noqa: ANN202 - KubeSpawner's
        from enclave.settings import get_settings

        grant = await self.grant()
        self.apply_grant(grant, get_settings().extracts)
        return await super()._start()
