"""The vocabulary of findings: every expected problem a check can report (invariant 5).

It lives with the policies because contracts name findings as data (which make a ticket
billable, which the confirmation shows as notices), and a policy file naming a code that
no check can produce must fail at start-up rather than silently never match.
"""

from __future__ import annotations

from enum import StrEnum


class FindingCode(StrEnum):
    """One per kind of finding; the value is what tickets and ``intake check`` store."""

    SUBJECT_UNREADABLE = "subject_unreadable"
    PRIORITY_MISSING = "priority_missing"
    PRIORITY_UNKNOWN = "priority_unknown"
    OUTAGE_ESCALATED = "outage_escalated"
    MISSING_FIELD = "missing_field"
    NO_REPLY_ADDRESS = "no_reply_address"
    NOT_A_MAIL = "not_a_mail"  # no header section at all: recorded, never charged
    MIME_DEFECTS = "mime_defects"
    UNKNOWN_CUSTOMER = "unknown_customer"
    UNAUTHORIZED_CONTACT = "unauthorized_contact"
    SUBSCRIPTION_LAPSED = "subscription_lapsed"
    STAFF_CC = "staff_cc"
    AFTER_HOURS = "after_hours"
    # Issue 13: what a header merely claims. A staff From without authentication is never
    # a staff response; a DMARC fail is recorded and never answered (no backscatter).
    UNAUTHENTICATED_STAFF = "unauthenticated_staff"
    DMARC_FAIL = "dmarc_fail"


# What every shipped contract did before these became policy keys.
DEFAULT_BILLABLE = frozenset({FindingCode.UNAUTHORIZED_CONTACT, FindingCode.SUBSCRIPTION_LAPSED})
DEFAULT_NOTICES = frozenset(
    {
        FindingCode.UNAUTHORIZED_CONTACT,
        FindingCode.SUBSCRIPTION_LAPSED,
        FindingCode.STAFF_CC,
        FindingCode.AFTER_HOURS,
        FindingCode.OUTAGE_ESCALATED,
    }
)
