"""What runs inside a workspace: the jupyter_server lockdown (authorizer, contents manager) and its config.

The config directory ``jupyter_config/`` is bound read-only into every sandbox and named by
``JUPYTER_CONFIG_DIR``, so a user cannot override it from ``~/.jupyter``.
"""
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "jupyter_config"
DATA_DIR = Path(__file__).resolve().parent / "jupyter_data"
PYSHIM_DIR = Path(__file__).resolve().parent / "pyshim"  # start-up shims, see pyshim/rfc3987_syntax.py
