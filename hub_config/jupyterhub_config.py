# JupyterHub configuration of the enclave (embedded default: one machine, bubblewrap sandboxes).
# Thin on purpose: every value comes from enclave.settings; the behaviour lives in
# hub_config.spawner, hub_config.authenticator and enclave.entitlements.
# Only the proxy's public port listens on TCP (loopback); the hub listens on a unix socket that
# is bound into each sandbox, and each workspace server on its own unix socket.
import sys
from pathlib import Path
from urllib.parse import quote

from enclave.entitlements import projects_for
from enclave.settings import get_settings
from hub_config import oidc
from hub_config.authenticator import EnclaveOAuthenticator
from hub_config.culling import cull_policy
from hub_config.spawner import SandboxSpawner, short_runtime_dir

c = get_config()  # noqa: F821 - injected by JupyterHub

settings = get_settings()
hub_dir = settings.hub_dir
run_dir = hub_dir / "run"
for d in (hub_dir, run_dir):
    d.mkdir(parents=True, exist_ok=True, mode=0o711)
repo = Path(__file__).resolve().parent.parent
hub_socket = run_dir / "hub.sock"
dp_socket = run_dir / "dp" / "dp.sock"  # alone in its folder: the spawner binds the folder

# -- network: proxy public port on loopback; hub on a unix socket ---------------------------------
c.JupyterHub.bind_url = oidc.public_url(settings)
c.JupyterHub.hub_bind_url = f"http+unix://{quote(str(hub_socket), safe='')}"
c.JupyterHub.hub_connect_url = c.JupyterHub.hub_bind_url
c.JupyterHub.hub_socket_mode = 0o666  # sandbox uids connect through their read-only bind of it
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.hub_port + 1}"
c.ConfigurableHTTPProxy.command = [str(repo / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(run_dir / "proxy.pid")

# -- state under ENCLAVE_HOME ------------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(run_dir / "jupyterhub.pid")
c.JupyterHub.cookie_max_age_days = 8 / 24  # sessions expire after a working day
c.JupyterHub.cleanup_servers = True  # a hub shutdown stops (and audits) every workspace

# -- sign-in: OIDC, identity only -------------------------------------------------------------------
issuer = oidc.issuer(settings)
c.JupyterHub.authenticator_class = EnclaveOAuthenticator
c.EnclaveOAuthenticator.client_id = settings.oidc_client_id
c.EnclaveOAuthenticator.client_secret = oidc.client_secret(settings)
c.EnclaveOAuthenticator.oauth_callback_url = oidc.callback_url(settings)
for trait, url in oidc.endpoints(settings).items():
    setattr(c.EnclaveOAuthenticator, trait, url)
c.EnclaveOAuthenticator.scope = ["openid", "profile", "email", "groups"]
c.EnclaveOAuthenticator.username_claim = "preferred_username"
c.EnclaveOAuthenticator.enable_pkce = True
c.EnclaveOAuthenticator.manage_groups = True
c.EnclaveOAuthenticator.auth_state_groups_key = "oauth_user.groups"
c.EnclaveOAuthenticator.allow_all = True  # whoever the provider vouches for; the registry decides access
c.EnclaveOAuthenticator.logout_redirect_url = f"{issuer}/session/end?client_id={settings.oidc_client_id}"
c.EnclaveOAuthenticator.auth_refresh_age = 900
c.JupyterHub.redirect_to_server = False

# -- workspaces ---------------------------------------------------------------------------------------
c.JupyterHub.spawner_class = SandboxSpawner
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0  # one per project; the spawner refuses any other name
c.SandboxSpawner.hub_socket_path = str(hub_socket)
# Workspace sockets under a short lower-case root: an http+unix:// host part is lower-cased by URL
# parsers and a socket path has at most 107 bytes, whatever ENCLAVE_HOME is (hub_config.spawner).
c.SandboxSpawner.runtime_dir = str(short_runtime_dir(str(hub_dir.resolve())))
c.SandboxSpawner.log_dir = str(hub_dir / "logs")
c.SandboxSpawner.forbidden_roots = [str(settings.home)]
c.SandboxSpawner.templates_dir = str(repo / "notebooks" / "templates")
c.SandboxSpawner.memory_limit_mb = settings.workspace_memory_mb
c.SandboxSpawner.max_processes = settings.workspace_max_procs
c.SandboxSpawner.cpu_seconds = settings.workspace_cpu_seconds
c.SandboxSpawner.terminals_enabled = settings.terminals_enabled
c.SandboxSpawner.default_url = "/lab"

# -- home page: the user's projects, each with an Open button ----------------------------------------
c.JupyterHub.template_paths = [str(repo / "hub_config" / "templates")]
c.JupyterHub.template_vars = {"enclave_projects": lambda user: projects_for(user.name) if user else []}

# -- roles: no API tokens, no sharing, no renaming for users -----------------------------------------
# The default "user" role is "self", which includes tokens and shares; list what a researcher needs.
c.JupyterHub.load_roles = [
    {
        "name": "user",
        "scopes": ["read:users!user", "users:activity!user", "servers!user", "access:servers!user"],
    },
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    },
]

# -- idle culling ---------------------------------------------------------------------------------------
# The culler stops a workspace whose last activity *as known to the hub* is idle_cull_seconds old.
# Timeout, culler interval and activity-report intervals come from hub_config.culling (the chart's
# cull: section is derived there too). A busy kernel counts as activity up to the project's
# max_kernel_run_seconds (hub_config.single_user.busy_activity, configured by the spawner).
cull = cull_policy(settings.idle_cull_seconds)
c.JupyterHub.last_activity_interval = cull.activity_interval
c.SandboxSpawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(cull.activity_interval)}
# The culler's HTTP client cannot use the hub's unix socket: it goes through the proxy on loopback.
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable, "-m", "jupyterhub_idle_culler",
            f"--timeout={cull.timeout}",
            f"--cull-every={cull.every}",
            f"--url={oidc.public_url(settings)}/hub/api",
        ],
    }
]

# -- DP budget service (enclave.dp_service): answers workspaces' DP queries on the host -------------
# A managed service: the hub starts it (with the enclave's settings; a service inherits nothing of
# the hub's environment) and stops it. Its socket is bound into every sandbox by the spawner.
from hub_config.launcher import settings_env  # noqa: E402

c.JupyterHub.services.append({
    "name": "dp-budget",
    "command": [sys.executable, "-m", "enclave.dp_service", f"--socket={dp_socket}"],
    "environment": settings_env(settings),
})
c.SandboxSpawner.dp_socket_path = str(dp_socket)

# -- the enclave console: a hub service at /services/console/, signed in through the hub (HubOAuth) -----
# It listens on loopback at the hub's port + 2 and reaches the hub API through the proxy (the hub's own
# socket is unix-only). Users need only the scope to sign in to it; what they see is the registry's call.
import os  # noqa: E402

console_port = settings.hub_port + 2
c.JupyterHub.services.append({
    "name": "console",
    "url": f"http://127.0.0.1:{console_port}",
    "command": [sys.executable, "-m", "enclave.console"],
    "environment": {
        # the registry and zones it serves; never the OIDC client secret, never a CLI identity
        **{k: v for k, v in os.environ.items()
           if k.startswith("ENCLAVE_") and k not in ("ENCLAVE_OIDC_CLIENT_SECRET", "ENCLAVE_USER")},
        "CONSOLE_HUB_API_URL": f"{oidc.public_url(settings)}/hub/api",
    },
    "oauth_no_confirm": True,
    "display": True,
})
for role in c.JupyterHub.load_roles:
    if role["name"] == "user":
        role["scopes"].append("access:services!service=console")
