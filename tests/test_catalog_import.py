"""`consent-gateway catalog import`: a tracker list becomes [[vendors]] TOML the owner reviews and includes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from consent_gateway.catalog import Catalog
from consent_gateway.catalog_import import import_file
from consent_gateway.cli import main
from consent_gateway.config import load_config
from consent_gateway.errors import ConfigError

HEADER = ("ID,Platform,Category,Cookie / Data Key name,Domain,Description,Retention period,Data Controller,"
          "User Privacy & GDPR Rights Portals,Wildcard match\n")
OCD_CSV = HEADER + """\
1,Acme Ads,Marketing,_acme_id,,Identifies visitors across sites. Used for ads.,1 year,Acme,https://acme.example/privacy,0
2,Acme Ads,Marketing,acme_seg_,,Segments,30 days,Acme,https://acme.example/privacy,1
3,Acme Ads,Marketing,acmeuid,.acmeads.example (3rd party),Browser id,3 months,Acme,https://acme.example/privacy,0
4,Google Analytics,Analytics,_ga,,Distinguishes users,2 years,Google,https://business.safety.google/privacy/,0
5,Shop CMS,Functional,cart_token,,Cart,2 weeks,Shop,https://shop.example,0
"""

DISCONNECT_JSON = {
    "license": "for the test only",
    "categories": {
        "Advertising": [
            {"Acme Ads": {"https://acme.example/": ["acmeads.example", "acme-cdn.example"]}},
            {"Criteo": {"https://www.criteo.com/": ["criteo.com", "criteo.net"]}},
        ],
        "Analytics": [{"Stats Co": {"https://stats.example/": ["stats.example"], "performance": "true"}}],
        "ConsentManagers": [{"Banner Co": {"https://banner.example/": ["banner.example"]}}],
    },
}


def test_an_open_cookie_database_csv_becomes_vendor_tables(tmp_path: Path) -> None:
    source = tmp_path / "cookies.csv"
    source.write_text(OCD_CSV, encoding="utf-8")
    result = import_file(source)
    assert [t["name"] for t in result.tables] == ["Acme Ads"]
    acme = result.tables[0]
    assert acme["id"] == "acme-ads" and acme["category"] == "marketing"
    assert acme["policy_url"] == "https://acme.example/privacy"
    assert acme["cookies"] == [
        {"pattern": "_acme_id", "lifetime": "1 year", "purpose": "Identifies visitors across sites."},
        {"pattern": "acme_seg_*", "lifetime": "30 days", "purpose": "Segments."},
        {"pattern": "acmeuid", "lifetime": "3 months", "purpose": "Browser id.", "domain": "acmeads.example"},
    ]
    assert result.skipped == {"Google Analytics": "already in the catalog as google-analytics",
                              "Shop CMS": "Functional cookies only"}


def test_a_disconnect_services_file_becomes_vendor_tables_without_known_hosts(tmp_path: Path) -> None:
    source = tmp_path / "services.json"
    source.write_text(json.dumps(DISCONNECT_JSON), encoding="utf-8")
    result = import_file(source)
    by_name = {t["name"]: t for t in result.tables}
    assert set(by_name) == {"Acme Ads", "Stats Co"}
    assert by_name["Acme Ads"]["script_hosts"] == ["acmeads.example", "acme-cdn.example"]
    assert by_name["Acme Ads"]["img_hosts"] == by_name["Acme Ads"]["script_hosts"]
    assert (by_name["Stats Co"]["category"], by_name["Stats Co"]["role"]) == ("analytics", "analytics")
    assert by_name["Stats Co"]["source"] == "https://stats.example/"
    assert result.skipped["Criteo"] == "every domain is already in the catalog"
    assert result.skipped["Banner Co"] == "category ConsentManagers"


def test_the_command_writes_toml_that_the_config_accepts(tmp_path: Path) -> None:
    source = tmp_path / "services.json"
    source.write_text(json.dumps(DISCONNECT_JSON), encoding="utf-8")
    out = tmp_path / "imported.toml"
    result = CliRunner().invoke(main, ["catalog", "import", str(source), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 vendors written" in result.output
    config = load_config(out)  # the reviewed file is a valid config: the tables pass the one vendor validation
    catalog = Catalog.builtin().merged(config.vendors, source=str(out))
    assert catalog.vendor_for_url("https://acme-cdn.example/tag.js", "script").id == "acme-ads"  # type: ignore[union-attr]
    assert tomllib.loads(out.read_text(encoding="utf-8"))["vendors"][0]["name"] == "Acme Ads"
    printed = CliRunner().invoke(main, ["catalog", "import", str(source)])
    assert printed.exit_code == 0 and "[[vendors]]" in printed.output


def test_an_import_never_reuses_a_builtin_vendor_id(tmp_path: Path) -> None:
    source = tmp_path / "services.json"
    source.write_text(json.dumps({"categories": {"Advertising": [
        {"Criteo": {"https://www.criteo.com/": ["new-criteo-host.example"]}}]}}), encoding="utf-8")
    (table,) = import_file(source).tables
    assert table["id"] == "criteo-2"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("list.txt", "hello", "unknown list format"),
        ("services.json", '{"categories": [', "not valid JSON"),
        ("services.json", '{"categories": {"Advertising": [{"A": 1, "B": 2}]}}', "categories.Advertising[0]"),
    ],
)
def test_unreadable_lists_are_errors_naming_the_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    source = tmp_path / name
    source.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        import_file(source)
    assert message in str(info.value) and str(source) in str(info.value)
    result = CliRunner().invoke(main, ["catalog", "import", str(source)])
    assert result.exit_code != 0 and message in result.output
