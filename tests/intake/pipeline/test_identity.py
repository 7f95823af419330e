"""Identity.is_staff: staff by address or domain, compared in the canonical spelling."""

from __future__ import annotations

import pytest

from intake.pipeline.identity import Identity

IDENTITY = Identity(
    addresses=("support@provider.example",),
    loop_marker="support@provider.example",
    staff_addresses=("sam@partner.example",),
    staff_domains=("provider.example",),
)


@pytest.mark.parametrize(
    ("address", "staff"),
    [
        ("ann@provider.example", True),
        ("Ann <ANN@Provider.Example>", True),
        ("ann@provider.example.", True),
        ("sam@partner.example", True),
        ("SAM@PARTNER.EXAMPLE", True),
        ("other@partner.example", False),
        ("Support@Provider.Example", False),
        ("jane@acme.example", False),
        ("ann@sub.provider.example", False),
        ("provider.example", False),
        ("", False),
    ],
    ids=[
        "staff-domain",
        "display-name-and-case",
        "root-dot",
        "staff-address",
        "staff-address-case",
        "colleague-of-a-staff-address",
        "our-support-address-is-not-staff",
        "customer",
        "subdomain-is-not-the-domain",
        "no-local-part",
        "empty",
    ],
)
def test_is_staff(address: str, staff: bool) -> None:
    assert IDENTITY.is_staff(address) is staff
