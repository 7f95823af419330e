"""The ``intake`` command line: serve, deliver, check, tickets, charges, quarantine, outbox, staff…

Every command takes ``--config`` and ``--database``; flags win over environment variables,
which win over the config file. Bad configuration ends with one line naming the key and
exit status 1 (75, EX_TEMPFAIL, for ``deliver``, so the MTA keeps the mail and retries). A
store that is missing, or whose schema is behind, ends with one line naming the path and
``intake db upgrade``, exit status 78 (EX_CONFIG; 75 for ``deliver``).

This package is a set of thin click command groups over :class:`intake.app.App`: the
composition root builds everything (logging included) from the settings the flags make.
"""

from __future__ import annotations

import click

from intake import __version__
from intake.cli import daemon, db, directory, queues, staff, tickets

COMMANDS: tuple[click.Command, ...] = (
    *daemon.COMMANDS,
    *tickets.COMMANDS,
    *queues.COMMANDS,
    *directory.COMMANDS,
    *db.COMMANDS,
    *staff.COMMANDS,
)


@click.group(commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="intake")
def main() -> None:
    """ticket-intake: support mail in, contract-checked tickets and confirmations out."""
