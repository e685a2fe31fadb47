"""``m365sweep detectors``: list the detector catalogue (id, severity, technique, title; ``--json`` for everything)."""

from __future__ import annotations

import json

import click

from detectors.engine import catalogue


def catalogue_json() -> list[dict[str, object]]:
    out = []
    for d in catalogue():
        m = d.meta
        out.append({
            "id": m.id, "title": m.title, "severity": m.severity.label, "technique": m.technique,
            "rationale": m.rationale, "remediation": list(m.remediation), "requires": list(m.requires),
            "false_positives": list(m.false_positives), "status": m.status,
            "description": (d.detect.__module__ and __import__(d.module, fromlist=["_"]).__doc__ or "").strip(),
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
