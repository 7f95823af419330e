"""Persistence: SQLAlchemy 2 models, the session scope and repository functions."""
