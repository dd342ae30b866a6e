"""The enclave's web console: a JupyterHub service for researchers, reviewers, the board and stewards."""
