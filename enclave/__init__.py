"""Governance core of the IDS research enclave: registry, board, provisioning, airlock, audit, CLI."""
__version__ = "0.1.0"
