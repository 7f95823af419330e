"""Pure parsing for ticket-intake: raw bytes in, frozen domain values out.

The package owns everything that can be decided from a message alone: decoding it
(``parse_message``; ``read_message_id`` reads the id from the header block alone,
``read_headers`` the decoded headers),
reading the subject grammar (``parse_subject``, with our ``ticket_tag`` for the configured
number format and ``strip_reply_prefixes``), finding the report fields
(``extract_fields``) in the report's text (``report_text``: a forward's report is the
forwarded content, ``find_forward``), telling people from machines (``classify``), reading bounces
(``read_delivery_report``) and the keys that make re-delivery harmless
(``idempotency_key``, ``content_hash``), and the one spelling of an address we keep
(``normalise_address``) and compare (``canonical_address``, ``address_domain``). It
performs no I/O, reads no clock and imports neither ``intake`` nor ``store``.
"""

from parsing.addresses import (
    address_domain,
    address_key,
    canonical_address,
    canonical_domain,
    normalise_address,
)
from parsing.auth import AUTHENTICATED, SenderTrust, sender_trust
from parsing.classify import classify
from parsing.dsn import BouncedRecipient, DeliveryReport, read_delivery_report
from parsing.fields import DEFAULT_PLACEHOLDERS, extract_fields, format_parts
from parsing.forwards import find_forward, report_text
from parsing.headers import header_line_regex, is_header_line
from parsing.idempotency import content_hash, idempotency_key
from parsing.message import header_section, parse_message, read_headers, read_message_id
from parsing.subject import (
    DEFAULT_TICKET_TAG,
    TicketTag,
    format_literals,
    parse_subject,
    strip_reply_prefixes,
    ticket_tag,
)
from parsing.types import (
    Attachment,
    CallExample,
    Classification,
    FieldExtraction,
    FieldPart,
    FieldSource,
    FieldSpec,
    Forwarded,
    ParsedMessage,
    SubjectParse,
    Verdict,
)

__all__ = [
    "AUTHENTICATED",
    "DEFAULT_PLACEHOLDERS",
    "DEFAULT_TICKET_TAG",
    "Attachment",
    "BouncedRecipient",
    "CallExample",
    "Classification",
    "DeliveryReport",
    "FieldExtraction",
    "FieldPart",
    "FieldSource",
    "FieldSpec",
    "Forwarded",
    "ParsedMessage",
    "SenderTrust",
    "SubjectParse",
    "TicketTag",
    "Verdict",
    "address_domain",
    "address_key",
    "canonical_address",
    "canonical_domain",
    "classify",
    "content_hash",
    "extract_fields",
    "find_forward",
    "format_literals",
    "format_parts",
    "header_line_regex",
    "header_section",
    "idempotency_key",
    "is_header_line",
    "normalise_address",
    "parse_message",
    "parse_subject",
    "read_delivery_report",
    "read_headers",
    "read_message_id",
    "report_text",
    "sender_trust",
    "strip_reply_prefixes",
    "ticket_tag",
]
