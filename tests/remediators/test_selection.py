"""Property tests: the auto-mode selection (a pure function) keeps its guarantees on every input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remediators.runner import select_auto

NAMES = st.sampled_from(["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"])
DOMAINS = st.sampled_from(["contoso.com", "Contoso.com", "CONTOSO.COM"])
UPNS = st.builds(lambda n, d, up: (f"{n}@{d}".upper() if up else f"{n}@{d}"), NAMES, DOMAINS, st.booleans())
ACCOUNTS = st.lists(st.fixed_dictionaries({
    "upn": UPNS, "verdict": st.sampled_from(["compromised", "suspicious", "clean", "Compromised", None]),
    "score": st.integers(min_value=0, max_value=500)}), max_size=30)


@given(ACCOUNTS, st.lists(UPNS, max_size=5), st.integers(min_value=-2, max_value=12), st.lists(UPNS, max_size=5))
def test_selection_guarantees(accounts: list[dict], protected: list[str], cap: int, gone: list[str]) -> None:
    sel = select_auto(accounts, protected, cap, gone)
    prot = {p.lower() for p in protected}
    compromised = {a["upn"].lower() for a in accounts if str(a["verdict"] or "").lower() == "compromised"}
    acted = [u.lower() for u in sel.act]
    # never more than the cap, never a protected account, only compromised accounts, no duplicates
    assert len(acted) <= max(cap, 0)
    assert not set(acted) & prot
    assert set(acted) <= compromised
    assert len(set(acted)) == len(acted)
    # every compromised account is in exactly one bucket
    buckets = [set(u.lower() for u in b) for b in (sel.act, sel.pending, sel.protected, sel.gone)]
    assert set().union(*buckets) == compromised
    assert sum(len(b) for b in buckets) == len(compromised)
    # protected accounts are reported as protected, never pending
    assert {u.lower() for u in sel.protected} == compromised & prot
    # the cap is used when there is enough work
    eligible = compromised - prot - {g.lower() for g in gone}
    assert len(acted) == min(max(cap, 0), len(eligible))


@given(ACCOUNTS, st.lists(UPNS, max_size=5), st.integers(min_value=0, max_value=12))
def test_selection_takes_highest_scores_first(accounts: list[dict], protected: list[str], cap: int) -> None:
    sel = select_auto(accounts, protected, cap)
    if not sel.pending or not sel.act:
        return
    best: dict[str, int] = {}
    for a in accounts:  # the first occurrence of a UPN after sorting is the highest-scored one
        if str(a["verdict"] or "").lower() == "compromised":
            k = a["upn"].lower()
            best[k] = max(best.get(k, -1), a["score"])
    assert min(best[u.lower()] for u in sel.act) >= max(best[u.lower()] for u in sel.pending)
