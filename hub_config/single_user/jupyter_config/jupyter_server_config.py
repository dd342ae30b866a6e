# jupyter_server configuration of every workspace. Bound read-only at $JUPYTER_CONFIG_DIR inside
# the sandbox, so nothing in the user's home can change it.
# ENCLAVE_TERMINALS_ENABLED is set by the spawner from the enclave settings ("1" or "0").
import os

c = get_config()  # noqa: F821 - injected by traitlets

terminals = os.environ.get("ENCLAVE_TERMINALS_ENABLED") == "1"

c.ServerApp.authorizer_class = "hub_config.single_user.authorizer.EnclaveAuthorizer"
c.EnclaveAuthorizer.terminals_enabled = terminals
c.ServerApp.contents_manager_class = "hub_config.single_user.contents.EnclaveContentsManager"
# Kernel output to the browser: bytes per message and per window, with a notice (output_limit.py).
c.ServerApp.kernel_websocket_connection_class = "hub_config.single_user.output_limit.EnclaveKernelWebsocketConnection"
c.ServerApp.terminals_enabled = terminals
c.ServerApp.disable_check_xsrf = False
c.ServerApp.max_body_size = 64 * 1024 * 1024
c.ServerApp.allow_origin = ""
c.ServerApp.open_browser = False
c.ServerApp.sock_mode = "0600"
# The user's own paths are not read (JUPYTER_CONFIG_DIR is this directory); these are the extensions in use.
c.ServerApp.jpserver_extensions = {
    "jupyterlab": True,
    "notebook_shim": False,  # only for the classic notebook UI, which is not installed
    "jupyter_server_terminals": terminals,
    "jupyter_lsp": False,
    "hub_config.single_user.busy_activity": True,  # a busy kernel is activity, up to the project's limit
    "hub_config.single_user.locked_settings": True,  # overridden plugins' settings cannot be saved
}
# An extension that fails must stop the server rather than leave it running without its control.
c.ServerApp.reraise_server_extension_failures = True
c.ContentsManager.allow_hidden = False
c.FileContentsManager.delete_to_trash = False
# The browser downloads nothing even if a handler slipped through: CSP sandbox without allow-downloads.
c.ServerApp.tornado_settings = {
    "websocket_max_message_size": 16 * 1024 * 1024,
    "headers": {
        "Content-Security-Policy": (
            "frame-ancestors 'self'; sandbox allow-scripts allow-same-origin allow-forms allow-modals allow-popups"
        ),
    },
}
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.news_url = None
# JupyterLab's state (user settings, layouts) and the notebook-trust database live in the server's
# own directory beside its socket: outside the home, so nothing the researcher's code writes there
# (~/.jupyterlab/user-settings, ~/.jupyter, ~/.local/share/jupyter) is read. The spawner creates
# the socket directory for the server alone; its contents go when the workspace stops.
# Locked and disabled plugins come from labconfig/ above; overridden plugins' settings cannot be
# saved through the API either (locked_settings.py).
from hub_config.sandbox import SERVER_SOCKET_DIR  # noqa: E402

server_state = os.environ.get("ENCLAVE_SERVER_STATE_DIR") or os.path.join(SERVER_SOCKET_DIR, "state")
try:
    for sub in ("user-settings", "workspaces", "notary"):
        os.makedirs(os.path.join(server_state, sub), mode=0o700, exist_ok=True)
except OSError:  # no socket directory (a pod serving on TCP): a fresh directory of the server's own
    import tempfile

    server_state = tempfile.mkdtemp(prefix="jupyter-server-state-")
    for sub in ("user-settings", "workspaces", "notary"):
        os.makedirs(os.path.join(server_state, sub), mode=0o700)
c.LabApp.user_settings_dir = os.path.join(server_state, "user-settings")
c.LabApp.workspaces_dir = os.path.join(server_state, "workspaces")
c.NotebookNotary.data_dir = os.path.join(server_state, "notary")
