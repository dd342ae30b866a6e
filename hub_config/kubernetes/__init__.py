"""Kubernetes path: Zero to JupyterHub values and the KubeSpawner subclass with the enclave checks."""
