"""Detection's pass 1 (the tenant-wide facts: forward destinations and phones shared across accounts, privileged
accounts, consents) is fed by the sweep from the snapshots it stores, so detection does not read every account twice.
The findings are the same as when the facts are read back from the store; a builder that did not see every stored
account (a resumed scan) is not used."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors._model import Allowlist
from detectors.engine import FactsBuilder, evaluate_scan
from scanner.snapshot import TenantInfo
from scanner.store import Store
from scanner.sweep import run_scan

# Detectors that read the cross-account facts (detectors/_model.py TenantFacts).
FACT_DETECTORS = {"mail.forward_destination_shared", "auth.shared_phone", "contact.linked_artefact"}


def _findings(db: Path, scan_id: str) -> set[tuple[str, str, str, str]]:
    with Store(db) as store:
        return {(f["account"], f["detector"], f["severity"], f["status"]) for f in store.findings(scan_id)}


def _reevaluate(db: Path, copy: Path, prebuilt: FactsBuilder | None, now: datetime) -> Any:
    shutil.copy(db, copy)
    with Store(copy) as store:
        scan_id = store.latest_scan_id()
        store.db.conn.execute("delete from findings where scan_id = ?", [scan_id])
        tenant = TenantInfo.model_validate_json(store.scan(scan_id)["tenant"])
        return evaluate_scan(store, scan_id, tenant=tenant, allowlist=Allowlist(), now=now, prebuilt=prebuilt)


async def test_facts_fed_during_collection_give_the_findings_read_back_facts_give(make_sim_env: Any,
                                                                                   tmp_path: Path) -> None:
    env = make_sim_env(users=80, seed=7, scenarios=True)
    now = datetime.now(UTC)
    r = await run_scan(env.cfg, now=now, **env.kwargs)
    assert r.summary.facts_from_collection is True
    db = Path(env.cfg.database_path)
    found = _findings(db, r.scan_id)
    assert FACT_DETECTORS & {d for _a, d, _s, _st in found}, "the tenant must exercise the cross-account facts"

    summary = _reevaluate(db, tmp_path / "from-store.db", None, now)
    assert summary.facts_from_collection is False
    assert _findings(tmp_path / "from-store.db", r.scan_id) == found

    # A builder that saw only some of the stored accounts (a resumed scan's second half) is not trusted.
    partial = FactsBuilder(now)
    with Store(db) as store:
        for i, acc in enumerate(store.iter_accounts(r.scan_id)):
            if i % 2:
                partial.add(acc)
    summary = _reevaluate(db, tmp_path / "partial.db", partial, now)
    assert summary.facts_from_collection is False
    assert _findings(tmp_path / "partial.db", r.scan_id) == found
