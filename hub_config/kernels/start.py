"""The first code of a kernel sandbox: a group-writable umask, then ipykernel.

Files the kernel writes in the home (and its ipc sockets) get the workspace group's read and
write bits, so the Jupyter server (another uid, in that group) can serve and save them.
"""
from __future__ import annotations

import os


def main() -> None:
    os.umask(0o007)
    from ipykernel.kernelapp import launch_new_instance

    launch_new_instance()


if __name__ == "__main__":
    main()
