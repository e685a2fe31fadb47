"""``m365sweep detectors``: list the detector catalogue (id, severity, technique, title; ``--json`` for everything)."""

from __future__ import annotations

import json

import click

from detectors.engine import catalogue, tenant_catalogue


def catalogue_json() -> list[dict[str, object]]:
    out = []
    dets: list[tuple[object, str]] = [(d, "account") for d in catalogue()]
    dets += [(d, "tenant") for d in tenant_catalogue()]
    for d, scope in sorted(dets, key=lambda x: x[0].meta.id):  # type: ignore[attr-defined]
        m = d.meta  # type: ignore[attr-defined]
        out.append({
            "id": m.id, "title": m.title, "severity": m.severity.label, "technique": m.technique,
            "rationale": m.rationale, "remediation": list(m.remediation), "requires": list(m.requires),
            "false_positives": list(m.false_positives), "status": m.status,
            "manual": m.manual,  # tenant-level detectors: how to fix by hand (no step acts on a tenant object)
            "scope": scope,  # "account": per-account snapshot; "tenant": once per scan (pseudo-account findings)
            "description": (__import__(d.module, fromlist=["_"]).__doc__ or "").strip(),  # type: ignore[attr-defined]
        })
    return out


@click.command("detectors")
@click.option("--json", "as_json", is_flag=True, help="Print the full catalogue as JSON.")
def detectors_command(as_json: bool) -> None:
    """List the detector catalogue."""
    rows = catalogue_json()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    w = max(len(str(r["id"])) for r in rows)
    for r in rows:
        click.echo(f"{str(r['id']):<{w}}  {str(r['severity']):<8}  {str(r['technique']):<9}  {r['title']}")
    click.echo(f"{len(rows)} detectors")
