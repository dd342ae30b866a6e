# jupyter_server configuration of every workspace. Bound read-only at $JUPYTER_CONFIG_DIR inside
# the sandbox, so nothing in the user's home can change it.
# ENCLAVE_TERMINALS_ENABLED is set by the spawner from the enclave settings ("1" or "0").
import os

c = get_config()  # noqa: F821 - injected by traitlets

terminals = os.environ.get("ENCLAVE_TERMINALS_ENABLED") == "1"

c.ServerApp.authorizer_class = "hub_config.single_user.authorizer.EnclaveAuthorizer"
c.EnclaveAuthorizer.terminals_enabled = terminals
c.ServerApp.contents_manager_class = "hub_config.single_user.contents.EnclaveContentsManager"
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
}
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
# JUPYTER_CONFIG_DIR is read-only: keep JupyterLab's own state (layouts, user settings) in the home.
# Locked and disabled plugins come from labconfig/page_config.json above and cannot be re-enabled there.
c.LabApp.user_settings_dir = os.path.expanduser("~/.jupyterlab/user-settings")
c.LabApp.workspaces_dir = os.path.expanduser("~/.jupyterlab/workspaces")
# The notebook-trust secret and database live in the data dir, which is read-only here; the notary
# does not create its directory, so this file (run as the user at start) does.
notary_dir = os.path.expanduser("~/.local/share/jupyter")
os.makedirs(notary_dir, mode=0o700, exist_ok=True)
c.NotebookNotary.data_dir = notary_dir
