# Start-up shim, first on PYTHONPATH in the workspaces and the hub.
# jsonschema imports rfc3987_syntax (when installed) only to check the "iri" string format; that
# import builds an Earley parser from a grammar and costs 1-4 s of CPU in every Python process that
# loads jupyter_events, i.e. in every workspace start. The enclave validates no IRIs, and jsonschema
# handles the module's absence (it then skips that format), so the import is declined here.
raise ImportError("rfc3987_syntax is not used in the enclave (see hub_config/single_user/pyshim)")
