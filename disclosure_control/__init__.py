"""Statistical disclosure control: rules as data, checks, the researcher API and the gate.

A pure library: it never imports ``enclave`` or JupyterHub; paths and data come in as
arguments (``data_loader(table_name) -> DataFrame`` for recomputation).
"""
