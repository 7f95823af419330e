"""ticket-intake daemon: edges (SMTP, IMAP, pipe), the pipeline, the outbox and the CLI."""

__version__ = "0.1.0"
