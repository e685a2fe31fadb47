"""Several tenants in one run: two databases, two reports, one summary (JSON + escaped HTML); tenants are
independent (one failing does not stop the other); layouts that would mix tenants are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanner.config import ConfigError
from scanner.store import Store
from scanner.tenants import TenantOutcome, combine_exit_codes, load_configs, run_many_sync, slug, write_summary

HOSTILE = 'Fabrikam <script>alert(1)</script> & "Co"'


def test_two_tenants_two_databases_two_reports_one_summary(make_sim_env: Any, tmp_path: Path) -> None:
    a = make_sim_env(users=30, seed=21, storage={"database": str(tmp_path / "a" / "a.db")})
    b = make_sim_env(users=35, seed=22, storage={"database": str(tmp_path / "b" / "b.db")})
    # ("tenant" is the factory's own keyword: set the labels on the parsed configs.)
    cfg_a = a.cfg.model_copy(update={"tenant": a.cfg.tenant.model_copy(update={"name": "Contoso"})})
    cfg_b = b.cfg.model_copy(update={"tenant": b.cfg.tenant.model_copy(update={"name": HOSTILE})})
    envs = {cfg_a.tenant.tenant_id: a, cfg_b.tenant.tenant_id: b}
    out = tmp_path / "out"
    res = run_many_sync([cfg_a, cfg_b], out, connect_kwargs=lambda c: envs[c.tenant.tenant_id].kwargs)

    assert [o.exit_code for o in res.outcomes] == [0, 0] and res.exit_code == 0
    # Two databases, each holding only its own tenant's scan.
    for cfg, env in ((cfg_a, a), (cfg_b, b)):
        with Store(cfg.database_path) as store:
            (scan,) = store.scans()
            assert scan["tenant_id"] == cfg.tenant.tenant_id and scan["finished"]
            upns = {acc["upn"] for acc in store.accounts(scan["id"])}
        assert upns and all(env.tenant.find_user(u) is not None for u in upns)
    assert a.cfg.database_path != b.cfg.database_path
    # Two reports, one directory per tenant label.
    dirs = {o.label: Path(o.out_dir) for o in res.outcomes}
    assert dirs["Contoso"] == out / "Contoso" and dirs[HOSTILE] == out / slug(HOSTILE)
    for label, d in dirs.items():
        assert (d / "report.html").is_file() and (d / "findings.json").is_file()
        scan = json.loads((d / "findings.json").read_text("utf-8"))["scan"]
        assert scan["tenant_id"] == next(o.tenant_id for o in res.outcomes if o.label == label)
    # One summary across tenants.
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert [t["label"] for t in summary["tenants"]] == ["Contoso", HOSTILE]
    assert summary["totals"]["tenants"] == 2
    assert summary["totals"]["accounts_scanned"] == sum(o.accounts_scanned for o in res.outcomes) >= 65
    assert summary["totals"]["compromised"] == sum(o.verdicts.get("compromised", 0) for o in res.outcomes) > 0
    assert summary["tenants"][0]["report"] == "Contoso/report.html"
    html = (out / "summary.html").read_text("utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Co&#34;" in html
    assert 'href="Contoso/report.html"' in html


def test_one_tenant_failing_does_not_stop_the_other(make_sim_env: Any, tmp_path: Path) -> None:
    from scanner.simulator.permissions import ALL_PERMISSIONS, DIR_READ

    good = make_sim_env(users=20, seed=31, storage={"database": str(tmp_path / "good.db")})
    bad = make_sim_env(users=20, seed=32, storage={"database": str(tmp_path / "bad.db")},
                       roles=sorted(set(ALL_PERMISSIONS) - set(DIR_READ) - {"Exchange.ManageAsApp"}))
    envs = {good.cfg.tenant.tenant_id: good, bad.cfg.tenant.tenant_id: bad}
    res = run_many_sync([bad.cfg, good.cfg], tmp_path / "out",
                        connect_kwargs=lambda c: envs[c.tenant.tenant_id].kwargs)
    failed, ok = res.outcomes
    assert failed.exit_code == 2 and failed.status == "error" and "User.Read.All" in (failed.message or "")
    assert ok.exit_code == 0 and ok.accounts_scanned >= 20
    assert res.exit_code == 2
    summary = json.loads((tmp_path / "out" / "summary.json").read_text("utf-8"))
    assert summary["totals"]["failed"] == 1 and summary["exit_code"] == 2


def _toml(path: Path, tenant_id: str, db: str, name: str | None = None) -> Path:
    extra = f'name = "{name}"\n' if name else ""
    path.write_text(f'[tenant]\ntenant_id = "{tenant_id}"\n{extra}[auth]\nmethod = "access_token"\n'
                    f'[storage]\ndatabase = "{db}"\n', encoding="utf-8")
    return path


def test_config_directory_and_refused_layouts(tmp_path: Path) -> None:
    d = tmp_path / "tenants"
    d.mkdir()
    _toml(d / "b.toml", "fabrikam.onmicrosoft.com", "fabrikam.db")
    _toml(d / "a.toml", "contoso.onmicrosoft.com", "contoso.db")
    (d / "notes.txt").write_text("not a config")
    cfgs = load_configs([d])
    assert [c.tenant.tenant_id for c in cfgs] == ["contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com"]
    assert cfgs[0].database_path == d / "contoso.db"  # relative to its own file

    _toml(d / "c.toml", "northwind.onmicrosoft.com", "contoso.db")
    with pytest.raises(ConfigError, match="same database"):
        load_configs([d])
    (d / "c.toml").unlink()
    _toml(d / "c.toml", "northwind.onmicrosoft.com", "northwind.db", name="contoso.onmicrosoft.com")
    with pytest.raises(ConfigError, match="tenant label"):
        load_configs([d])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no \\*.toml"):
        load_configs([empty])


def test_exit_code_precedence_and_slugs(tmp_path: Path) -> None:
    assert combine_exit_codes([0, 3, 1]) == 1
    assert combine_exit_codes([3, 0]) == 3
    assert combine_exit_codes([1, 2, 3]) == 2
    assert combine_exit_codes([]) == 0
    assert slug("../../etc/passwd") == "etc_passwd"
    assert slug("...") == "tenant" and slug("Contoso Ltd (EU)") == "Contoso_Ltd_EU"
    o = TenantOutcome(label="x", tenant_id="t", database="d", out_dir=str(tmp_path / "elsewhere"), exit_code=2,
                      status="busy", message="another scan of tenant x is already running (pid 1)")
    js, html = write_summary(tmp_path / "root", [o])
    data = json.loads(js.read_text())
    assert data["tenants"][0]["report"] is None and data["tenants"][0]["status"] == "busy"
    assert "already running" in html.read_text()
