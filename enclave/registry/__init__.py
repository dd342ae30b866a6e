"""The registry database: one SQLAlchemy schema for governance, provisioning and release state."""
