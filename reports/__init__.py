"""Reports of a stored scan: ``report.html`` (one self-contained file), ``findings.json`` and ``findings.csv``.

``write_outputs(store, scan_id, out_dir)`` is called by the scanner at the end of every scan and by
``m365sweep report`` to re-render a stored scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.exports import write_csv, write_json
from reports.render import render_report
from scanner.store import Store

__all__ = ["write_outputs", "render_report", "write_json", "write_csv"]


def write_outputs(store: Store, scan_id: str, out_dir: str | Path, cfg: Any = None) -> dict[str, Path]:
    """Write report.html, findings.json and findings.csv for ``scan_id`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    findings = store.findings(scan_id)
    paths = {
        "json": write_json(store, scan_id, out / "findings.json", findings),
        "csv": write_csv(store, scan_id, out / "findings.csv", findings),
    }
    html = render_report(store, scan_id, cfg=cfg, findings=findings)
    target = out / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    paths["html"] = target
    return paths
