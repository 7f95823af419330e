"""The change record stored on an inbound row keeps its JSON shape, key for key."""

from __future__ import annotations

from typing import Any

import pytest

from intake.pipeline.changes import (
    Bounce,
    ChangeRecord,
    FollowUpChanges,
    MachineChanges,
    StaffReplyChanges,
)


@pytest.mark.parametrize(
    ("record", "stored"),
    [
        (ChangeRecord(), {}),
        (
            ChangeRecord(MachineChanges("auto-submitted: auto-replied")),
            {"machine": "auto-submitted: auto-replied"},
        ),
        (
            ChangeRecord(
                MachineChanges(
                    "dsn",
                    (Bounce("jane@acme.example", "5.1.1", True),),
                    ("stranger@nowhere.example",),
                )
            ),
            {
                "machine": "dsn",
                "bounced": [{"address": "jane@acme.example", "status": "5.1.1", "permanent": True}],
                "never_written_to": ["stranger@nowhere.example"],
            },
        ),
        (
            ChangeRecord(FollowUpChanges(("serial_number",), ())),
            {"supplied": ["serial_number"], "still_missing": []},
        ),
        (
            ChangeRecord(FollowUpChanges((), ("serial_number",), reopened=True)),
            {"supplied": [], "still_missing": ["serial_number"], "reopened": True},
        ),
        (
            ChangeRecord(StaffReplyChanges(first_response=True, response_met=False)),
            {"first_response": True, "response_met": False},
        ),
        (ChangeRecord(StaffReplyChanges(first_response=False)), {"staff_reply": True}),
        (
            ChangeRecord().with_suppressed({"jane@acme.example": "already answered"}),
            {"suppressed": {"jane@acme.example": "already answered"}},
        ),
        (
            ChangeRecord(FollowUpChanges((), ())).with_suppressed({"j@a.example": "bouncing"}),
            {"supplied": [], "still_missing": [], "suppressed": {"j@a.example": "bouncing"}},
        ),
    ],
    ids=[
        "nothing",
        "machine",
        "machine-with-bounces",
        "follow-up",
        "follow-up-reopened",
        "first-staff-response",
        "later-staff-reply",
        "suppressed-confirmation",
        "follow-up-with-suppressed-ack",
    ],
)
def test_change_records_serialise_to_the_stored_shape(
    record: ChangeRecord, stored: dict[str, Any]
) -> None:
    assert record.to_json() == stored
    assert list(record.to_json()) == list(stored)  # key order too: `tickets show` prints it
