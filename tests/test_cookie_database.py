"""Set-Cookie names no catalog vendor claims, classified with the Open Cookie Database: by name AND domain,
conservatively (tests use inline sample rows, never the shared data)."""

from __future__ import annotations

import csv
import io

import pytest

from consent_gateway.catalog import Catalog
from consent_gateway.cookie_database import CookieDatabase
from consent_gateway.cookies import CookieFilter
from consent_gateway.decision import Decision

HEADER = ("ID,Platform,Category,Cookie / Data Key name,Domain,Description,Retention period,Data Controller,"
          "User Privacy & GDPR Rights Portals,Wildcard match\n")
ROWS = HEADER + """\
1,Acme Ads,Marketing,_acme_id,,Identifies visitors,1 year,Acme,https://acme.example/privacy,0
2,Acme Ads,Marketing,acme_seg_,,Segments,1 year,Acme,https://acme.example/privacy,1
3,Acme Ads,Marketing,uuid9,.acmeads.example (3rd party),Browser id,3 months,Acme,https://acme.example,0
4,Short Co,Marketing,_s,,Session,30 minutes,Short,https://short.example,1
5,Short Co,Marketing,tp,,Too short,1 year,Short,https://short.example,0
6,Instagram,Marketing,sessionid,instagram.com,Generic name,1 year,Meta,https://meta.example,0
7,Stats Co,Analytics,_stats_vid,,Visitor id,2 years,Stats,https://stats.example,0
8,Shop CMS,Functional,cart_token,,Cart,2 weeks,Shop,https://shop.example,0
9,Tracker X,Marketing,cart_token,,Same name as a functional cookie,1 year,X,https://x.example,0
10,Tracker Y,Analytics,both_ways,,Filed twice,1 year,Y,https://y.example,0
11,Tracker Z,Marketing,both_ways,,Filed twice,1 year,Z,https://z.example,0
12,Personal,Personalization,_pers_pref,,Preference,1 year,P,https://p.example,0
"""


@pytest.fixture(scope="module")
def database() -> CookieDatabase:
    return CookieDatabase(csv.DictReader(io.StringIO(ROWS)))


@pytest.mark.parametrize(
    ("name", "domain", "expected"),
    [
        ("_acme_id", "", ("ocd-acme-ads", "marketing")),  # set on the site by the vendor's script
        ("acme_seg_42", "", ("ocd-acme-ads", "marketing")),  # wildcard row: a prefix
        ("_stats_vid", "", ("ocd-stats-co", "analytics")),
        ("_pers_pref", "", ("ocd-personal", "preferences")),
        ("uuid9", "", None),  # the vendor sets it on its own domain: the site's own uuid9 is not it
        ("uuid9", ".acmeads.example", ("ocd-acme-ads", "marketing")),
        ("uuid9", "cdn.acmeads.example", ("ocd-acme-ads", "marketing")),
        ("_session", "", None),  # "_s" is too short a prefix to trust
        ("tp", "", None),
        ("sessionid", "instagram.com", None),  # generic names never
        ("cart_token", "", None),  # also listed as functional
        ("both_ways", "", None),  # filed under two categories
        ("_acme_idx", "", None),
    ],
)
def test_lookup_is_by_name_and_domain_and_conservative(
    database: CookieDatabase, name: str, domain: str, expected: tuple[str, str] | None
) -> None:
    vendor = database.lookup(name, domain)
    assert ((vendor.id, vendor.category) if vendor else None) == expected


def test_the_set_cookie_filter_drops_database_tracking_cookies_until_consent(database: CookieDatabase) -> None:
    catalog = Catalog(Catalog.builtin().vendors.values(), cookie_database=database)
    cookie_filter = CookieFilter(catalog, "cg_consent")
    headers = [
        (b"set-cookie", b"_acme_id=1; Path=/; Max-Age=31536000"),
        (b"set-cookie", b"uuid9=2; Path=/"),  # the site's own cookie of a vendor-domain name
        (b"set-cookie", b"uuid9=3; Path=/; Domain=.acmeads.example"),
        (b"set-cookie", b"_stats_vid=4; Path=/"),
        (b"set-cookie", b"cart_token=5; Path=/"),
        (b"content-type", b"text/html"),
    ]
    refused = cookie_filter.filter(headers, Decision(granted=frozenset({"necessary"})))
    assert refused == [
        (b"set-cookie", b"uuid9=2; Path=/"),
        (b"set-cookie", b"cart_token=5; Path=/"),
        (b"content-type", b"text/html"),
    ]
    analytics = cookie_filter.filter(headers, Decision(granted=frozenset({"necessary", "analytics"})))
    assert (b"set-cookie", b"_stats_vid=4; Path=/") in analytics and len(analytics) == 4


def test_catalog_entries_win_over_the_database(database: CookieDatabase) -> None:
    catalog = Catalog(Catalog.builtin().vendors.values(), cookie_database=database)
    assert catalog.vendor_for_set_cookie("_ga").id == "google-analytics"  # type: ignore[union-attr]
    assert catalog.vendor_for_set_cookie("_acme_id").id == "ocd-acme-ads"  # type: ignore[union-attr]
    assert Catalog(Catalog.builtin().vendors.values()).vendor_for_set_cookie("_acme_id") is None


def test_the_bundled_database_loads_with_its_license_and_notice() -> None:
    bundled = CookieDatabase.bundled()
    assert len(bundled) > 500
    assert Catalog.builtin().cookie_database is bundled
    from importlib import resources

    data = resources.files("consent_gateway").joinpath("data")
    assert "Apache License" in data.joinpath("open-cookie-database.LICENSE").read_text(encoding="utf-8")
    assert "Open Cookie Database" in data.joinpath("NOTICE").read_text(encoding="utf-8")
