"""What intake says about its store's schema: where the database is, and why it is refused.

One wording for the daemon's refusal at start (``intake.app.open_store``), the read-only
commands, ``intake db current`` and the readiness check (``/readyz``, ``intake health``),
so each names the same path and the same command (``intake db upgrade``).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from intake.settings import Settings
from store.migrate import SchemaStatus


def where(settings: Settings) -> str:
    """The database as a person can find it: a SQLite file's absolute path, else the URL
    (password hidden)."""
    parsed = make_url(settings.database.url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return str(Path(parsed.database or "").resolve())
    return parsed.render_as_string(hide_password=True)


def schema_refusal(status: SchemaStatus, settings: Settings) -> str | None:
    """Why the daemon must not run on this schema, with what fixes it; None when current."""
    if status.up_to_date:
        return None
    place = where(settings)
    if not status.exists:
        return (
            f"no intake database at {place}: point at yours with --config FILE, "
            "--database URL or INTAKE_DATABASE__URL (`intake db upgrade` creates a new one)"
        )
    if status.newer:
        return (
            f"the schema at {place} is at revision {status.current}, newer than this "
            f"intake (head {status.head}): run the newer version"
        )
    found = status.current or "unversioned, from before migrations"
    return (
        f"the schema at {place} is behind ({found}; this version needs {status.head}): "
        "run `intake db upgrade` with the same --config/--database, then start again"
    )
