"""Reports as real mail clients shape them, read under the managed-PBX contract.

Each case is a message built in the shape of the real-client samples in shared/corpus
(Outlook/Exchange HTML and its text part, Gmail, Apple Mail, iPhone, Thunderbird,
mobile), and states what a careful NOC operator reading the contract would derive:
the fields missing and whether the $100 missing-information charge applies.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.pipeline.assess import Assessment, assess
from intake.pipeline.identity import Identity
from intake.policy.policy import PolicyBook, load_policy
from parsing import parse_message

MONDAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 10:00 MST, in business hours
IDENTITY = Identity(("support@example.com",), "support@example.com", (), ("provider.example",))
POLICY = load_policy("managed-pbx")
SUBJECT = "Acme Corp – Denver office – No dial tone on all lines – P1"
CHARGE = "100.00 USD"


def mail(text: str | None, html: str | None = None, subject: str = SUBJECT) -> bytes:
    message = EmailMessage()
    message["From"] = "Jane Doe <jane@acme.example>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<shape@acme.example>"
    message.set_content(text or "")
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def assessed(raw: bytes) -> Assessment:
    message = parse_message(raw)
    return assess(message, "jane@acme.example", PolicyBook(POLICY), IDENTITY, MONDAY)


def charge_of(a: Assessment) -> str | None:
    kinds = [c for c in a.charges if c.kind == "missing_information"]
    return f"{kinds[0].amount:.2f} {kinds[0].currency}" if kinds else None


CALLS = "Date/Time: 2026-11-23 08:15 MST\nCalling Number: x2201\nCalled Number: +1 720 555 0199\n"

# --- Outlook / Exchange: the field table in HTML, and as Outlook renders it as text ---


def _mso_row(label: str, value: str) -> str:
    cell = '<td width=200 valign=top style="border:solid windowtext 1.0pt;padding:0in 5.4pt">'
    return (
        f'<tr>{cell}<p class=MsoNormal><b><span style="font-size:11.0pt">{label}'
        f"<o:p></o:p></span></b></p></td>{cell}<p class=MsoNormal><span "
        f'style="font-size:11.0pt">{value}<o:p></o:p></span></p></td></tr>'
    )


MSO_ROWS = [
    ("Company Name", "Acme Corp"),
    ("Contact Phone Number", "303-555-0142"),
    ("Serial Number (board)", "ZB-0042-7781"),
    ("Serial Number (appliance)", "ZA-0042-7782"),
    ("Software Version", "MX 17.0.4"),
    ("Detailed Description of the Problem", "No phone in the Denver office gets a dial tone."),
    ("Can the Issue be Reproduced?", "Yes, every call"),
]
MSO_CALLS = (
    "<table class=MsoNormalTable border=1 cellspacing=0 cellpadding=0><tr>"
    "<td><p class=MsoNormal><b>Date/Time</b></p></td><td><p class=MsoNormal><b>Calling "
    "Number / Extension / User</b></p></td><td><p class=MsoNormal><b>Called Number / "
    "Extension / User</b></p></td></tr>"
    "<tr><td><p class=MsoNormal>2026-11-23 08:15</p></td><td><p class=MsoNormal>x2201</p>"
    "</td><td><p class=MsoNormal>+1 720 555 0199</p></td></tr>"
    "<tr><td><p class=MsoNormal>2026-11-23 08:20</p></td><td><p class=MsoNormal>x2202</p>"
    "</td><td><p class=MsoNormal>911</p></td></tr></table>"
)


def outlook_html(rows: list[tuple[str, str]], after: str = "") -> str:
    table = "".join(_mso_row(label, value) for label, value in rows)
    return (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>'
        "p.MsoNormal {margin:0in}</style></head><body lang=EN-US><div class=WordSection1>"
        "<p class=MsoNormal>Hello support,<o:p></o:p></p>"
        f"<table class=MsoNormalTable border=1 cellspacing=0 cellpadding=0>{table}</table>"
        f"<p class=MsoNormal><o:p>&nbsp;</o:p></p>{MSO_CALLS}{after}</div></body></html>"
    )


OUTLOOK_TEXT_TABS = (
    "Hello support,\n\n"
    + "".join(f"{label}\t{value}\n" for label, value in MSO_ROWS)
    + "\nDate/Time\tCalling Number / Extension / User\tCalled Number / Extension / User\n"
    "2026-11-23 08:15\tx2201\t+1 720 555 0199\n"
)
OUTLOOK_TEXT_LINES = (
    "Hello support,\n\n" + "".join(f"{label}\n\n{value}\n\n" for label, value in MSO_ROWS) + CALLS
)
QUOTED_OUTLOOK = (
    "<div id=divRplyFwdMsg dir=ltr><hr><font face=Calibri><b>From:</b> NOC<br>"
    "<b>Sent:</b> Monday</font></div>" + outlook_html(MSO_ROWS)
)

# --- Gmail, Apple Mail, iPhone, Thunderbird, mobile, other languages ---

GMAIL_BOLD = (
    "Hi,\n\n*Company Name:* Acme Corp\n*Contact Phone Number:* 303-555-0142\n"
    "*Serials:* ZB-0042-7781 / ZA-0042-7782\n**Software Version:** 17.0.4\n"
    "*Detailed Description of the Problem:* no dial tone on any phone since 8am\n"
    "*Can the Issue be Reproduced?* Yes\n\n" + CALLS + "\nThanks,\nJane\n\n"
    "On Mon, Nov 23, 2026 at 9:00 AM NOC <noc@provider.example> wrote:\n"
    "> Serial Number (appliance): OLD-1\n"
)
CONTRACT_LIST = (
    "Hello,\n\n"
    "1. Company Name: Acme Corp\n"
    "2. Contact Name: Jane Doe\n"
    "3. Contact Email Address: jane@acme.example\n"
    "4. Contact Phone Number: (303) 555-0142\n"
    "5. Serial Number of Zultys System (both for the “board” and the “appliance”):\n"
    "   a) board: ZB-0042-7781\n"
    "   b) appliance: ZA-0042-7782\n"
    "6. Software Version of Zultys System and/or Client Applications: MX 17.0.4\n"
    "7. Detailed Description of the Problem: no dial tone since 8am\n"
    "   i. Can the Issue be Reproduced? Yes\n"
    "8. Specific Call Example(s)\n"
    "   i. Date/Time: 2026-11-23 08:15\n"
    "   ii. Calling Number / Extension / User: x2201\n"
    "   iii. Called Number / Extension / User: +1 720 555 0199\n"
    "9. Internal Ticket Number: n/a\n"
)
APPLE_ONE_LINE = (
    "Company: Acme Corp\nPhone: 303-555-0142\n"
    "Serial Number: board ZB-0042-7781, appliance ZA-0042-7782\n"
    "Version: 17.0.4\nDescription: no dial tone\nReproducible: yes\n" + CALLS + "\n"
    "Sent from my iPhone\n\n"
    "> On Nov 23, 2026, at 09:00, NOC <noc@provider.example> wrote:\n> Serial: OLD\n"
)
THUNDERBIRD_TWO_LINES = (
    "- Company Name: Acme Corp\n- Phone: 303-555-0142\n- Board Serial Number: ZB-0042-7781\n"
    "- Appliance S/N: ZA-0042-7782\n- SW Version: 17.0.4\n- Problem: no dial tone\n"
    "- Can the issue be reproduced? Yes\n" + CALLS + "\n"
    "On 11/23/26 9:00 AM, NOC wrote:\n> Appliance S/N: OLD-2\n"
)
GERMAN = (
    "Firmenname: Acme GmbH\nTelefon: +49 30 1234567\nSeriennummer Platine: ZB-1\n"
    "Seriennummer Gerät: ZA-2\nSoftwareversion: 17.0.4\n"
    "Beschreibung: Kein Freizeichen auf allen Apparaten\nReproduzierbar: ja\n"
    "Datum/Uhrzeit: 23.11.2026 08:15\nAnrufer: 2201\nAngerufene Nummer: 030 555 0199\n"
)
FRENCH = (
    "Société : Acme SA\nTéléphone : +33 1 23 45 67 89\nNuméro de série (carte) : ZB-1\n"
    "Numéro de série (appareil) : ZA-2\nVersion du logiciel : 17.0.4\n"
    "Description du problème : pas de tonalité\nReproductible : oui\n"
    "Date/heure : 23/11/2026 08:15\nAppelant : 2201\nNuméro appelé : 01 55 55 01 99\n"
)
SPANISH = (
    "Empresa: Acme SL\nTeléfono: +34 91 123 4567\nNúmeros de serie: ZB-1 / ZA-2\n"
    "Versión del software: 17.0.4\nDescripción del problema: sin tono de marcado\n"
    "¿Se puede reproducir el problema? Sí\n"
    "Fecha/hora: 23/11/2026 08:15\nLlamante: 2201\nNúmero llamado: 91 555 0199\n"
)
ONE_SERIAL_LABELLED = THUNDERBIRD_TWO_LINES.replace("- Appliance S/N: ZA-0042-7782\n", "")
ONE_SERIAL_UNLABELLED = APPLE_ONE_LINE.replace(
    "board ZB-0042-7781, appliance ZA-0042-7782", "ZB-0042-7781"
)
PROSE_ONLY = (
    "Company: Acme Corp\nPhone: 303-555-0142\nVersion: 17.0.4\nDescription: no dial tone\n"
    "Reproducible: yes\n" + CALLS + "The serial number of the board and the appliance is on "
    "the label at the back, I will send it later.\n"
)
REPLY_WITH_QUOTED_TABLE = "Please see the details in the table below.\n"

# (id, text part, html part, missing fields, charge)
CASES = [
    ("outlook-html-table", OUTLOOK_TEXT_TABS, outlook_html(MSO_ROWS), [], None),
    ("outlook-html-only", None, outlook_html(MSO_ROWS), [], None),
    ("outlook-text-tabs", OUTLOOK_TEXT_TABS, None, [], None),
    ("outlook-text-label-then-value", OUTLOOK_TEXT_LINES, None, [], None),
    (
        "outlook-reply-quoted-table-is-history",
        REPLY_WITH_QUOTED_TABLE,
        "<html><body><p>Please see the details in the table below.</p>"
        + QUOTED_OUTLOOK
        + "</body></html>",
        ["contact_phone", "serial_number", "software_version", "description", "reproducible",
         "call_examples"],
        CHARGE,
    ),
    (
        "outlook-html-only-reply-quoted-table-is-history",
        None,
        "<html><body><p>Please see the details in the table below.</p>"
        + QUOTED_OUTLOOK
        + "</body></html>",
        ["contact_phone", "serial_number", "software_version", "description", "reproducible",
         "call_examples"],
        CHARGE,
    ),
    (
        "gmail-html-only-reply-quoted-table-is-history",
        None,
        "<html><body><div dir=ltr>Please see below.</div><div class=gmail_quote><div dir=ltr "
        "class=gmail_attr>On Mon, Nov 23, 2026 at 9:00 AM NOC wrote:<br></div><blockquote "
        "class=gmail_quote>" + outlook_html(MSO_ROWS) + "</blockquote></div></body></html>",
        ["contact_phone", "serial_number", "software_version", "description", "reproducible",
         "call_examples"],
        CHARGE,
    ),
    ("gmail-bold-and-quote", GMAIL_BOLD, None, [], None),
    ("contract-list-copied", CONTRACT_LIST, None, [], None),
    ("apple-iphone-one-line-both-serials", APPLE_ONE_LINE, None, [], None),
    ("thunderbird-two-serial-lines", THUNDERBIRD_TWO_LINES, None, [], None),
    ("mobile-german", GERMAN, None, [], None),
    ("mobile-french", FRENCH, None, [], None),
    ("mobile-spanish", SPANISH, None, [], None),
    ("only-the-board-serial", ONE_SERIAL_LABELLED, None, ["serial_number"], CHARGE),
    ("one-serial-unlabelled", ONE_SERIAL_UNLABELLED, None, ["serial_number"], CHARGE),
    ("serial-mentioned-in-prose-only", PROSE_ONLY, None, ["serial_number"], CHARGE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "html", "missing", "charge"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_fields_missing_and_charge_per_client_shape(
    text: str | None, html: str | None, missing: list[str], charge: str | None
) -> None:
    a = assessed(mail(text, html))
    assert (list(a.missing_fields), charge_of(a)) == (missing, charge)


def test_both_serials_are_read_per_part() -> None:
    a = assessed(mail(THUNDERBIRD_TWO_LINES))
    assert dict(a.extraction.parts["serial_number"]) == {
        "board": "ZB-0042-7781",
        "appliance": "ZA-0042-7782",
    }
    assert "OLD-2" not in str(a.fields)  # never a value from quoted history


def test_the_missing_part_is_named() -> None:
    a = assessed(mail(ONE_SERIAL_LABELLED))
    assert a.missing_details == (
        f"{POLICY.field_label('serial_number')}: still needed: the appliance serial number "
        "(the board serial number was read)",
    )
    assert ("Board serial number", "ZB-0042-7781") in a.read_details


def test_call_examples_as_a_table_one_per_row() -> None:
    a = assessed(mail(None, outlook_html(MSO_ROWS)))
    assert [(e["when"], e["calling"], e["called"]) for e in a.fields["call_examples"]] == [
        ("2026-11-23 08:15", "x2201", "+1 720 555 0199"),
        ("2026-11-23 08:20", "x2202", "911"),
    ]


# A complete report written in any mix of the label forms people use is never charged.
LABELS = {
    "company": ["Company Name", "Company", "company name", "Firmenname", "Société", "Empresa"],
    "phone": ["Contact Phone Number", "Phone", "Tel", "Telefon", "Téléphone", "Teléfono"],
    "board": ["Board Serial Number", "Serial Number (board)", "Board S/N", "Seriennummer Platine"],
    "appliance": ["Appliance Serial Number", "Serial Number (appliance)", "Appliance S/N"],
    "version": ["Software Version", "SW Version", "Version", "Softwareversion", "Versión"],
    "description": ["Detailed Description of the Problem", "Description", "Beschreibung"],
    "reproducible": ["Can the Issue be Reproduced?", "Reproducible", "Reproduzierbar"],
}
MARKERS = ["", "- ", "• ", "1. ", "a) ", "ii. ", "* "]
STYLES = ["{l}: {v}", "*{l}:* {v}", "**{l}:** {v}", "{l} - {v}", "{L}: {v}"]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_complete_report_is_never_charged(data: st.DataObject) -> None:
    values = {
        "company": "Acme Corp", "phone": "303-555-0142", "board": "ZB-1", "appliance": "ZA-2",
        "version": "17.0.4", "description": "no dial tone", "reproducible": "yes",
    }  # fmt: skip
    lines = []
    for key, value in values.items():
        label = data.draw(st.sampled_from(LABELS[key]))
        style = data.draw(st.sampled_from(STYLES))
        marker = data.draw(st.sampled_from(MARKERS))
        lines.append(marker + style.format(l=label, L=label.upper(), v=value))
    body = "\n".join(lines) + "\n" + CALLS
    a = assessed(mail(body))
    assert (list(a.missing_fields), charge_of(a)) == ([], None), body


SIGNATURES = st.lists(
    st.sampled_from(
        [
            "Jane Doe",
            "Acme Corp",
            "IT Manager",
            "Denver, CO",
            "www.acme.example",
            "Direct: +1 303 555 0100",
            "Serial: SIG-1",
            "Company: Signature Inc",
        ]
    ),
    min_size=1,
    max_size=4,
)
QUOTES = st.lists(
    st.sampled_from(
        ["Serial Number (appliance): OLD-1", "Phone: 000", "Description: old", "thanks", ""]
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None)
@given(signature=SIGNATURES, quoted=QUOTES, report=st.sampled_from([GERMAN, CONTRACT_LIST]))
def test_quoted_history_or_a_signature_never_changes_the_fields(
    signature: list[str], quoted: list[str], report: str
) -> None:
    plain = assessed(mail(report))
    signed = report + "\n-- \n" + "\n".join(signature) + "\n"
    history = (
        signed
        + "\nOn Mon, Nov 23, 2026 at 9:00 AM NOC <noc@provider.example> wrote:\n"
        + "".join(f"> {line}\n" for line in quoted)
    )
    for variant in (signed, history):
        other = assessed(mail(variant))
        assert dict(other.extraction.values) == dict(plain.extraction.values)
        assert other.extraction.parts == plain.extraction.parts


def _confirmation(body: str) -> tuple[str, str]:
    from email import message_from_bytes
    from email.policy import default

    from intake.replies.render import Sender, make_template_environment, render_confirmation

    sender = Sender("support@example.com", "Support", (), "x-loop")
    reply = render_confirmation(
        make_template_environment(),
        assessed(mail(body)),
        number="TKT-000001",
        message_id="c@example.com",
        sender=sender,
        now=MONDAY,
    )
    parsed = message_from_bytes(reply.raw, policy=default)
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html


def test_the_confirmation_lists_what_was_read_and_what_part_is_still_needed() -> None:
    text, html = _confirmation(ONE_SERIAL_LABELLED)
    assert "  - Board serial number: ZB-0042-7781" in text
    assert "  - Contact Phone Number: 303-555-0142" in text
    assert "still needed: the appliance serial number" in text
    assert "ZB-0042-7781" in html


def test_echoed_values_are_capped_one_line_and_escaped() -> None:
    hostile = "<script>alert(1)</script>" + "x" * 200
    text, html = _confirmation(THUNDERBIRD_TWO_LINES.replace("no dial tone", hostile))
    line = next(li for li in text.splitlines() if li.startswith("  - Detailed Description"))
    assert len(line) <= len("  - Detailed Description of the Problem: ") + 80
    assert line.endswith("…")
    assert "<script>" not in html and "&lt;script&gt;" in html


# (id, first mail's serial lines, the follow-up's, still missing after it, stored value)
FOLLOW_UPS = [
    ("appliance-in-the-reply", "Board Serial: ZB-1", "Appliance S/N: ZA-2", [],
     "board: ZB-1; appliance: ZA-2"),
    ("unlabelled-fills-the-open-part", "Board Serial: ZB-1", "Serial: ZA-2", [],
     "board: ZB-1; appliance: ZA-2"),
    ("the-same-part-again", "Board Serial: ZB-1", "Board Serial: ZB-9", ["serial_number"],
     {"board": "ZB-9"}),
    ("both-in-the-reply", "", "Serials: ZB-1 / ZA-2", [], "board: ZB-1; appliance: ZA-2"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("first", "reply", "still", "stored"),
    [c[1:] for c in FOLLOW_UPS],
    ids=[c[0] for c in FOLLOW_UPS],
)
def test_a_follow_up_completes_a_multi_part_field(
    first: str, reply: str, still: list[str], stored: object
) -> None:
    from intake.pipeline.followup import apply_follow_up
    from store.models import Ticket

    opened = assessed(mail(THUNDERBIRD_TWO_LINES.split("- Board")[0] + first + "\n"))
    assert "serial_number" in opened.missing_fields
    ticket = Ticket(
        fields=dict(opened.fields), missing_fields=list(opened.missing_fields), status="waiting"
    )
    changes = apply_follow_up(ticket, assessed(mail(reply + "\n")), MONDAY)
    assert ("serial_number" in changes.supplied) == (still == [])
    assert [name for name in ticket.missing_fields if name == "serial_number"] == still
    assert ticket.fields["serial_number"] == stored


def test_an_outlook_forward_reads_the_forwarded_html_table() -> None:
    # FW: the report is the forwarded content, its table after Outlook's header block.
    text = (
        "Forwarding the report from our site.\n\n"
        "________________________________\n"
        "From: Jane Doe <jane@acme.example>\nSent: Monday, November 23, 2026 9:00 AM\n"
        "To: IT <it@acme.example>\nSubject: Acme Corp – Denver office – No dial tone – P1\n\n"
        "Hello support, see the table.\n"
    )
    html = (
        "<html><body><p>Forwarding the report from our site.</p>"
        "<div id=divRplyFwdMsg dir=ltr><hr><b>From:</b> Jane Doe<br><b>Sent:</b> Monday<br>"
        "<b>Subject:</b> Acme Corp</div>" + outlook_html(MSO_ROWS) + "</body></html>"
    )
    a = assessed(mail(text, html, subject="FW: Acme Corp – Denver office – No dial tone – P1"))
    assert a.message.forwarded is not None
    assert (list(a.missing_fields), charge_of(a)) == ([], None)
