"""Kernels in a sandbox of their own, as the researcher, started for the workspace's server.

The Jupyter server runs under the workspace's server uid and cannot change uid. It asks the
kernel broker (``broker``, on the host, outside every sandbox) to start each kernel through the
kernel provisioner ``provisioner.SandboxProvisioner`` (entry point ``enclave-sandbox`` of the
group ``jupyter_client.kernel_provisioners``). ``start`` is what runs inside the kernel sandbox.
"""
