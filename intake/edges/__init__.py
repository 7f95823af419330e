"""The edges: protocol in -> (bytes, Envelope) -> Pipeline.ingest -> protocol out.

SMTP (aiosmtpd) with its group-commit writer, the IMAP pollers and the MTA pipe. Edges never
touch the store themselves: they reach it through the pipeline or a port that ``app`` builds.
"""
