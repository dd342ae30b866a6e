"""The seccomp filter bwrap applies to every workspace (built with libseccomp through pyseccomp).

Namespaces, setpriv and no_new_privs already take every capability away, but an unprivileged
process may still create a *user* namespace and be "root" inside it, where it can mount file
systems and reach kernel code paths that are otherwise closed to it. The filter refuses that
and the other calls a notebook never needs: namespace and mount calls, ptrace and cross-process
memory access, kernel modules, keyrings, BPF and perf events. Everything else is allowed.
"""
from __future__ import annotations

import errno
import os
import tempfile
from functools import lru_cache

import pyseccomp as seccomp

DENIED_SYSCALLS = (
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "mount_setattr",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "open_by_handle_at", "name_to_handle_at",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # the kernel itself
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "bpf",
    "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "syslog", "acct",
    "swapon", "swapoff", "reboot", "quotactl", "personality",
)
# clone() flags that create namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)


def _syscall_exists(name: str) -> bool:
    try:
        seccomp.resolve_syscall(seccomp.system_arch(), name)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


@lru_cache(maxsize=1)
def bpf_program() -> bytes:
    """The compiled BPF program, in the form ``bwrap --seccomp FD`` reads."""
    flt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        if _syscall_exists(name):
            flt.add_rule(seccomp.ERRNO(errno.EPERM), name)
    for flag in NAMESPACE_FLAGS:  # rules on one call are alternatives: any one flag refuses it
        flt.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, where a filter cannot read them; ENOSYS makes the C
    # library fall back to clone(), which the rule above checks.
    if _syscall_exists("clone3"):
        flt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


def bpf_fd() -> int:
    """A readable descriptor holding the program, for ``pass_fds`` (the caller closes it)."""
    read_end, write_end = os.pipe()
    program = bpf_program()
    # A pipe holds 64 KiB; the program is a few hundred bytes.
    os.write(write_end, program)
    os.close(write_end)
    return read_end
