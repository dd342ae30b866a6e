"""The workspace gateway: on the host side of a workspace's socket, outside every sandbox.

The proxy routes a workspace's traffic to the gateway's socket; the gateway forwards only what
``policy`` allows to the Jupyter server's socket, within size limits, and audits large
transfers. A server replaced by the researcher's code still gets nothing else through.
``host`` is the process that runs it, beside the kernel broker and the server sandbox.
"""
