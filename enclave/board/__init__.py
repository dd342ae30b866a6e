"""The governing board: applications, votes, decisions and project life cycle."""
