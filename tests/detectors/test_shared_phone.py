"""auth.shared_phone is graded by novelty (detections.md §C1 elevator, §6 'appearing on several accounts overnight'):
this account's method new (created recently, first seen, or its number changed since the last scan) → Medium, enough
for a suspicious verdict; a standing shared number (an admin's second account, a team's on-call phone) → Low, reported
but not suspicious on its own."""

from __future__ import annotations

from typing import Any

from tests.detectors.builders import evaluate_spec

MOBILE = "3179e48a-750b-4051-897c-87b9720928f7"  # Graph's fixed id of the mobile phone method
BOB = {"upn": "bob@contoso.com", "methods": [{"id": MOBILE, "phone_number": "+44 7700 900999"}]}


def shared(spec: dict[str, Any]) -> tuple[str, bool, str]:
    res = evaluate_spec({"others": [BOB], **spec})
    (f,) = [f for f in res.findings if f.detector == "auth.shared_phone"]
    return f.severity.label, f.evidence["new"], res.verdict


def test_a_phone_added_tonight_that_another_account_has_is_medium_and_suspicious() -> None:
    sev, new, verdict = shared({"methods": [{"id": MOBILE, "phone_number": "+447700900999", "created_hours_ago": 3}]})
    assert (sev, new, verdict) == ("medium", True, "suspicious")


def test_a_shared_number_first_seen_since_the_last_scan_is_medium() -> None:
    sev, new, _ = shared({"has_previous": True, "methods": [{"id": MOBILE, "phone_number": "+44 7700 900999"}]})
    assert (sev, new) == ("medium", True)


def test_a_number_changed_on_the_same_method_since_the_last_scan_is_medium() -> None:
    sev, new, _ = shared({"previous": {"methods": [{"id": MOBILE, "phone_number": "+44 7700 900123"}]},
                          "methods": [{"id": MOBILE, "phone_number": "+44 7700 900999"}]})
    assert (sev, new) == ("medium", True)


def test_a_standing_shared_number_is_low_and_not_suspicious_alone() -> None:
    standing = {"id": MOBILE, "phone_number": "+44 7700 900999"}
    sev, new, verdict = shared({"previous": {"methods": [standing]}, "methods": [standing]})
    assert (sev, new, verdict) == ("low", False, "clean")
    # the first scan of a phone method without a creation time (Graph gives none for phones): standing too
    sev, new, verdict = shared({"methods": [standing]})
    assert (sev, new, verdict) == ("low", False, "clean")
