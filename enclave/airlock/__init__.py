"""The release airlock: request states, who may act (permissions), when (policies), and the service."""
