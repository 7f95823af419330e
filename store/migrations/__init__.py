"""The store's Alembic migrations: ``env.py`` and one script per schema change in ``versions/``.

Run them through :mod:`store.migrate` (``intake db upgrade``); there is no alembic.ini.
"""
