"""Exponential backoff with jitter: how long to wait before attempt ``n + 1``.

This module owns the one retry-delay rule every retrying part of the daemon uses (the
pipeline's failed messages, the outbox sender, the IMAP poller's reconnects): the first
delay is ``initial``, each further failure doubles it up to ``maximum``, and the result is
spread by ``±jitter`` so that many instances failing together do not retry in lockstep.
It sits below every layer and imports none of them; the randomness is a parameter so
tests can pin it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

Uniform = Callable[[float, float], float]  # random.uniform's signature: a draw in [a, b]

# 2.0 ** 1024 overflows a float; past this many doublings every delay is capped anyway.
_MAX_DOUBLINGS: Final = 1023


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    jitter: float,
    uniform: Uniform = random.uniform,
) -> float:
    """Seconds to wait after failure number ``attempt`` (1 = the first failure).

    ``initial * 2 ** (attempt - 1)`` capped at ``maximum``, times a factor drawn from
    ``[1 - jitter, 1 + jitter]``.
    """
    doublings = min(max(0, attempt - 1), _MAX_DOUBLINGS)
    return min(maximum, initial * 2.0**doublings) * uniform(1.0 - jitter, 1.0 + jitter)
