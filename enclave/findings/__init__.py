"""Public findings: a released request turned into a page of the public catalogue.

``publish`` checks who may publish (``permissions``) and when (``policies``), copies only files
the release recorded, verified against their release checksums, and rebuilds the static
catalogue (``catalogue``) under ``ENCLAVE_HOME/public/``: HTML pages, a JSON feed and the
released CSV and PNG files, served without sign-in by any web server.
"""
