"""What runs inside a workspace: the jupyter_server lockdown (authorizer, contents manager, kernel output
limit, locked settings, busy-kernel activity) and its config.

The config directory ``jupyter_config/`` is bound read-only into every sandbox and named by
``JUPYTER_CONFIG_DIR``, so a user cannot override it from ``~/.jupyter``.
"""
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "jupyter_config"
DATA_DIR = Path(__file__).resolve().parent / "jupyter_data"
PYSHIM_DIR = Path(__file__).resolve().parent / "pyshim"  # start-up shims, see pyshim/rfc3987_syntax.py


def limit_args(limits) -> list[str]:  # noqa: ANN001 - enclave.conditions.WorkspaceLimits
    """The board's per-project workspace conditions as the server's command-line config (both spawners)."""
    return [
        f"--EnclaveContentsManager.read_cap_bytes={limits.contents_read_cap_bytes}",
        f"--EnclaveContentsManager.ingress_allowed={limits.ingress_allowed}",
        f"--EnclaveContentsManager.ingress_max_bytes={limits.ingress_max_bytes}",
        f"--BusyKernelActivity.max_kernel_run_seconds={limits.max_kernel_run_seconds}",
    ]
