"""What one inbound message changed, as typed values, and their one JSON shape.

The record is stored on the inbound row (``InboundMessage.changes``) and printed by
``intake tickets show`` for each message of a thread, so its keys are a contract:
``to_json`` is the only place that spells them, and mypy checks everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Bounce:
    """A recipient a delivery status notification reports as failed or delayed (RFC 3464)."""

    address: str
    status: str | None  # RFC 3463 enhanced status code, e.g. 5.1.1; None when absent
    permanent: bool


@dataclass(frozen=True, slots=True)
class MachineChanges:
    """Machine mail: why it is machine mail, and the bounces it reported."""

    reason: str
    bounced: tuple[Bounce, ...] = ()
    never_written_to: tuple[str, ...] = ()  # bounces for mail we never sent: noted only


@dataclass(frozen=True, slots=True)
class FollowUpChanges:
    """A customer follow-up: the ticket's missing fields it supplied and those still open."""

    supplied: tuple[str, ...]
    still_missing: tuple[str, ...]
    reopened: bool = False


@dataclass(frozen=True, slots=True)
class StaffReplyChanges:
    """A staff answer; the first one is the contract's "response" and meets it or not."""

    first_response: bool
    response_met: bool | None = None


@dataclass(frozen=True, slots=True)
class FloodChanges:
    """A message past its sender's flood limit, kept on the sender's latest ticket."""

    reason: str  # which limit, the count and the limit


Effect = MachineChanges | FollowUpChanges | StaffReplyChanges | FloodChanges


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """Everything one message changed: its route's effect and any suppressed reply."""

    effect: Effect | None = None
    suppressed: tuple[tuple[str, str], ...] = ()  # (recipient, why), in budget order

    def with_suppressed(self, suppressed: Mapping[str, str]) -> ChangeRecord:
        return ChangeRecord(self.effect, (*self.suppressed, *suppressed.items()))

    def to_json(self) -> dict[str, Any]:
        """The stored shape; keys appear only when they say something, as before."""
        data = _effect_json(self.effect)
        if self.suppressed:
            data["suppressed"] = dict(self.suppressed)
        return data


def _effect_json(effect: Effect | None) -> dict[str, Any]:
    match effect:
        case MachineChanges():
            return _machine_json(effect)
        case FollowUpChanges():
            data: dict[str, Any] = {
                "supplied": list(effect.supplied),
                "still_missing": list(effect.still_missing),
            }
            return data | ({"reopened": True} if effect.reopened else {})
        case StaffReplyChanges(first_response=True):
            return {"first_response": True, "response_met": effect.response_met}
        case StaffReplyChanges():
            return {"staff_reply": True}
        case FloodChanges():
            return {"flood": effect.reason}
    return {}


def _machine_json(effect: MachineChanges) -> dict[str, Any]:
    data: dict[str, Any] = {"machine": effect.reason}
    if effect.bounced:
        data["bounced"] = [
            {"address": b.address, "status": b.status, "permanent": b.permanent}
            for b in effect.bounced
        ]
    if effect.never_written_to:
        data["never_written_to"] = list(effect.never_written_to)
    return data
