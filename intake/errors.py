"""The one error tree for infrastructure failures (ARCHITECTURE invariant 5).

Expected problems with a message (bad subject, missing fields, unknown customer) are
findings, never exceptions. Only the store, the relay, a mailbox or the configuration
raise, and always one of these, so edges can map them onto protocol answers.
"""


class IntakeError(Exception):
    """Base of every infrastructure failure the daemon raises on purpose."""


class ConfigError(IntakeError):
    """Configuration or policy data is invalid; the message names the key and the problem."""


class StoreError(IntakeError):
    """The database could not be reached or refused a write."""


class SchemaError(IntakeError):
    """The store is missing, or its schema is not the one this version runs on.

    The message says where intake looked and which command fixes it (``intake db
    upgrade``, or the option that points at the right database).
    """


class RelayError(IntakeError):
    """An outbound reply could not be handed to the relay or written to the outbox directory."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailboxError(IntakeError):
    """An IMAP mailbox could not be polled (connect, TLS, login, a refused command)."""


class TokenError(IntakeError):
    """An OAuth 2 token command or file gave no usable access token (XOAUTH2)."""


class ListenError(IntakeError):
    """A port the daemon should listen on is taken or not ours (SMTP, ``web.listen``)."""


class BudgetExceededError(IntakeError):
    """Reading one message (parse and assessment) took longer than ``intake.parse_timeout``.

    Its worker process was killed and replaced; the message is quarantined, never retried,
    since the same bytes would take as long again.
    """
