"""This process's identity among the instances sharing one store.

Mailbox leases (``mailbox_state.lease_owner``) and outbox claims (``outbox.claim_owner``)
name their holder with it: the host and pid say where to look, the random part keeps a
restarted process (same pid after a reboot, same host in a container) from being
mistaken for its predecessor, whose claims it must not inherit.
"""

from __future__ import annotations

import os
import socket
import uuid


def instance_id() -> str:
    """``host:pid:random``, new on every call (each caller owns what it claims)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
