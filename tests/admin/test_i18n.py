"""The dashboard in French and English: one catalog (admin/i18n.py) with every key in both languages, the
language from the browser or the switch, and every page in it."""

from __future__ import annotations

import ast
import html
import re
import string
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from consent_gateway.admin import i18n
from consent_gateway.admin.inventory import _SECTIONS
from consent_gateway.admin.reports import _BAR_CHARTS
from consent_gateway.classification import ACTIONS as DECISIONS
from consent_gateway.classification import SUBJECT_KINDS
from consent_gateway.events import ACTIONS, DEVICE_TYPES

from .conftest import DPO_PASSWORD, PREFIX, VISITOR, csrf_of

ADMIN = Path(i18n.__file__).parent
#: ``t("key")`` / ``tn("key", n)`` in a template; ``t(request, "key")`` / ``translate(lang, "key")`` in code
_TEMPLATE_KEY = re.compile(r"""(?<![\w.])(tn?)\(\s*["']([\w.\- ()]+)["']""")
_CODE_KEY = re.compile(
    r"""\b(?:t\(request|translate\(lang|translate\(_language\(request\))\s*,\s*f?"([\w.\-]+)"\s*[,)]"""
)
_CODE_PLURAL = re.compile(r"""\btranslate_plural\(lang\s*,\s*"([\w.\-]+)"\s*,""")


def _keys_used() -> set[str]:
    used: set[str] = set()
    for template in (ADMIN / "templates").glob("*.html"):
        for function, key in _TEMPLATE_KEY.findall(template.read_text(encoding="utf-8")):
            if key.endswith("."):  # a key made at render time: checked below from its source of names
                continue
            used |= {f"{key}.one", f"{key}.other"} if function == "tn" else {key}
    for module in ADMIN.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        used |= set(_CODE_KEY.findall(text))
        used |= {f"{key}.{form}" for key in _CODE_PLURAL.findall(text) for form in ("one", "other")}
    # keys made from a value
    nav = re.findall(r'\("(\w+)", "/', (ADMIN / "templates" / "base.html").read_text(encoding="utf-8"))
    used |= {f"nav.{key}" for key in nav}
    used |= {f"inventory.section.{kind}" for kind in _SECTIONS}
    used |= {f"chart.by.{by}" for by in _BAR_CHARTS}
    used |= {f"group.{by}" for by in _BAR_CHARTS}
    used |= {f"action.{action}" for action in ACTIONS}
    used |= {f"device.{device}" for device in DEVICE_TYPES}
    used |= {f"decision.{decision}" for decision in DECISIONS}
    used |= {f"kind.{kind}" for kind in SUBJECT_KINDS}
    used |= {f"users.action.{action}" for action in ("enable", "disable", "reset", "remove")}
    used |= {f"users.error.{action}_self" for action in ("disable", "remove")}
    used |= {f"filter.error.{name}" for name in ("action", "category", "device", "ip", "ip_role", "order", "date",
                                                  "date_first", "time")}  # fmt: skip
    return used


def test_both_languages_have_every_key_and_the_same_placeholders() -> None:
    english, french = i18n.MESSAGES["en"], i18n.MESSAGES["fr"]
    assert sorted(set(english) - set(french)) == [], "keys missing in French"
    assert sorted(set(french) - set(english)) == [], "keys missing in English"
    for key, text in english.items():
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
        assert names == {name for _, name, _, _ in string.Formatter().parse(french[key]) if name}, key


def test_every_key_the_pages_use_is_in_the_catalog() -> None:
    used = _keys_used()
    assert len(used) > 250  # the scan found the templates' keys
    assert sorted(used - set(i18n.MESSAGES["en"])) == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "fr"),
        ("fr", "fr"),
        ("fr-CA", "fr"),
        ("de-DE,fr;q=0.8,en;q=0.5", "fr"),  # German is not offered: the first offered language wins
        ("en-GB,fr;q=0.9", "en"),
        ("en;q=0.4,fr;q=0.6", "fr"),
        ("de-DE", "en"),
        ("", "en"),
        (None, "en"),
        ("fr;q=0", "en"),
        ("fr;q=bogus", "en"),
    ],
)
def test_the_language_follows_the_browser(header: str | None, expected: str) -> None:
    assert i18n.language_of(None, header) == expected


def test_the_switchs_choice_wins_over_the_browser() -> None:
    assert i18n.language_of("en", "fr-FR") == "en"
    assert i18n.language_of("fr", "en-US") == "fr"
    assert i18n.language_of("xx", "fr-FR") == "fr"  # a forged cookie is ignored


def test_numbers_and_plurals_follow_the_language() -> None:
    assert i18n.number("en", 12345) == "12,345" and i18n.number("fr", 12345) == "12\u202f345"
    assert i18n.percent("en", 0.62) == "62%" and i18n.percent("fr", 0.62) == "62\u00a0%"
    assert i18n.translate_plural("en", "events.matching", 0) == "0 matching events"
    assert i18n.translate_plural("fr", "events.matching", 0) == "0 événement correspondant"
    assert i18n.translate_plural("fr", "events.matching", 2) == "2 événements correspondants"


def test_markup_in_the_catalog_escapes_the_values_put_in_it() -> None:
    html = i18n.translate("fr", "visitor.none_html", id="<script>x</script>")
    assert "<code>&lt;script&gt;x&lt;/script&gt;</code>" in html


FR = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8"}


def _login_fr(client: TestClient) -> None:
    page = client.get(f"{PREFIX}/login", headers=FR)
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "<h1 id=\"login-title\">Connexion</h1>" in page.text and "Nom d'utilisateur" in html.unescape(page.text)
    answer = client.post(
        f"{PREFIX}/login",
        data={"csrf_token": csrf_of(page.text), "name": "dpo", "password": DPO_PASSWORD, "next": "/"},
        headers=FR,
    )
    assert answer.status_code == 303


def test_a_french_browser_gets_every_page_in_french(client: TestClient) -> None:
    wrong = client.get(f"{PREFIX}/login", headers=FR)
    refused = client.post(
        f"{PREFIX}/login",
        data={"csrf_token": csrf_of(wrong.text), "name": "dpo", "password": "nope", "next": "/"},
        headers=FR,
    )
    assert "Nom d'utilisateur ou mot de passe incorrect." in html.unescape(refused.text)
    _login_fr(client)
    pages = {
        "/": ["<h1>Vue d'ensemble</h1>", "Taux de consentement par catégorie, 30 derniers jours",
              "Part des événements de consentement ayant autorisé", "Taux d'autorisation par fournisseur",
              "événements de consentement", "Part des visiteurs dont le dernier choix de la journée",
              "Comment ces chiffres sont comptés", "des visiteurs", '<th scope="row">ordinateur</th>'],
        "/events": ["<h1>Événements de consentement</h1>", "403 événements correspondants, du plus récent",
                    ">consentement donné<", "Catégorie autorisée"],
        f"/visitors/{VISITOR}": ["<h1>Historique d'un visiteur</h1>", "3 événements pour", "consentement retiré",
                                 "Détails et bandeau affiché"],
        "/events/ev-visitor-0": ["<h1>Événement de consentement</h1>", "Identifiant de consentement", "Bandeau affiché",
                                 "Agent utilisateur"],
        "/integrity": ["<h1>Intégrité du journal des consentements</h1>", "Têtes de chaîne",
                       "Vérifier tout le journal"],
        "/inventory": ["<h1>Ce que le site utilise</h1>", "Hôtes tiers", "Classements (0)"],
        "/enforcement": ["<h1>Chargé sans consentement</h1>"],
        "/cookies": ["<h1>Inventaire des cookies</h1>", "Cookies inconnus du catalogue"],
        "/export": ["<h1>Exporter les événements de consentement</h1>", "Colonnes personnelles", "Télécharger en CSV"],
        "/erase": ["<h1>Effacer les données personnelles d'un visiteur</h1>", "Examiner l'effacement"],
        "/no-such-page": ["<h1>Page introuvable</h1>"],
    }  # fmt: skip
    for path, texts in pages.items():
        answer = client.get(PREFIX + path, headers=FR)
        assert answer.status_code in (200, 404), path
        page = html.unescape(answer.text)
        assert '<html lang="fr">' in page, path
        assert "Connecté en tant que" in page and "Se déconnecter" in page, path
        for text in texts:
            assert text in page, (path, text)
        for english in ("Log out", "Overview", "Consent events", "Show the data as a table", "matching event"):
            assert english not in page, (path, english)


def test_the_search_forms_errors_are_in_french(client: TestClient) -> None:
    _login_fr(client)
    answer = client.get(f"{PREFIX}/events", params={"since": "hier", "until_time": "14:30", "device": "toaster"},
                        headers=FR)  # fmt: skip
    assert answer.status_code == 400
    page = html.unescape(answer.text)
    assert "Saisissez une date comme 2025-03-31." in page
    assert "Indiquez aussi la date." in page
    assert "Type d'appareil inconnu." in page
    assert "Corrigez les filtres signalés" in page
    # a script's export gets its error in English, like every JSON error of the API
    api = client.get(f"{PREFIX}/export.csv", params={"since": "hier"}, headers=FR)
    assert api.status_code == 400 and "Use a date like" in api.json()["error"]["message"]


def test_the_switch_keeps_the_language_chosen_over_the_browsers(client: TestClient) -> None:
    _login_fr(client)
    events = client.get(f"{PREFIX}/events", params={"country": "DE"}, headers=FR)
    link = re.search(r'href="(/_consent/admin/language\?set=en&amp;next=[^"]+)"[^>]*>English<', events.text)
    assert link, "no visible switch to English"
    switched = client.get(link.group(1).replace("&amp;", "&"), headers=FR)
    assert switched.status_code == 303
    assert switched.headers["location"] == f"{PREFIX}/events?country=DE"  # back on the same search
    assert "cg_admin_lang=en" in switched.headers["set-cookie"]
    page = client.get(switched.headers["location"], headers=FR)
    assert '<html lang="en">' in page.text and "<h1>Consent events</h1>" in page.text
    assert 'lang="fr" hreflang="fr">Français</a>' in page.text
    back = client.get(f"{PREFIX}/language", params={"set": "fr", "next": "/"}, headers={"Accept-Language": "en"})
    page = client.get(f"{PREFIX}/", headers={"Accept-Language": "en"})
    assert back.status_code == 303 and '<html lang="fr">' in page.text


def test_the_switch_goes_nowhere_but_the_dashboard(client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil"):
        answer = client.get(f"{PREFIX}/language", params={"set": "fr", "next": target})
        assert answer.headers["location"] == f"{PREFIX}/"
    unknown = client.get(f"{PREFIX}/language", params={"set": "de", "next": "/"})
    assert unknown.status_code == 303 and "set-cookie" not in unknown.headers


#: Words a template may hold as they are, the same in both languages: names, units, HTTP and cookie terms.
_SAME_IN_BOTH = {"consent", "gateway", "UTC", "FR", "Firefox", "GPC", "CSV", "IP", "HttpOnly", "Secure", "SameSite",
                 "nbsp", "aria", "invalid", "true", "describedby", "err"}  # fmt: skip


def test_no_template_holds_words_outside_the_catalog() -> None:
    """A sentence written straight into a template would stay English on a French page: this finds it."""
    for template in sorted((ADMIN / "templates").glob("*.html")):
        text = template.read_text(encoding="utf-8")
        for construct in (r"\{#.*?#\}", r"\{\{.*?\}\}", r"\{%.*?%\}", r"<svg.*?</svg>"):
            text = re.sub(construct, " ", text, flags=re.S)
        shown = re.findall(r">([^<>]+)<", text)
        shown += re.findall(r'\b(?:aria-label|placeholder|title|alt)="([^"]*)"', text)
        words = {word for piece in shown for word in re.findall(r"[A-Za-z]{2,}", piece)}
        assert words <= _SAME_IN_BOTH, (template.name, sorted(words - _SAME_IN_BOTH))


def _refusals() -> list[tuple[str, str, set[str]]]:
    """Every ClassificationError and DirectoryError raised with a reason: (catalog key, where, values given)."""
    found = []
    sources = (ADMIN.parent / "classification.py", ADMIN / "inventory.py", ADMIN / "directory.py")
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            position = {"ClassificationError": 2, "DirectoryError": 1}.get(node.func.id)
            if position is None or len(node.args) <= position:
                continue
            reason = node.args[position]
            assert isinstance(reason, ast.Constant), f"{source.name}:{node.lineno}: the reason is a plain word"
            prefix = "classify.error" if node.func.id == "ClassificationError" else "users.error"
            values = {k.arg for k in node.keywords if k.arg} | ({"field"} if prefix == "classify.error" else set())
            found.append((f"{prefix}.{reason.value}", f"{source.name}:{node.lineno}", values))
    return found


def test_every_refusal_of_a_classification_or_a_user_change_has_its_words_in_both_languages() -> None:
    refusals = _refusals()
    assert len(refusals) >= 15
    for key, where, values in refusals:
        for lang in i18n.LANGUAGES:
            assert key in i18n.MESSAGES[lang], (where, key, lang)
            names = {name for _, name, _, _ in string.Formatter().parse(i18n.MESSAGES[lang][key]) if name}
            assert names <= values, (where, key, lang, names - values)


def test_a_refused_classification_says_why_in_french(client: TestClient) -> None:
    _login_fr(client)
    csrf = csrf_of(client.get(f"{PREFIX}/inventory", headers=FR).text)
    refused = client.post(
        f"{PREFIX}/inventory/classify",
        data={"csrf_token": csrf, "kind": "host", "subject": "cdn.example", "action": "vendor", "vendor_id": "nope"},
        headers={"Origin": "http://testserver", **FR},
    )
    assert refused.status_code == 400
    page = html.unescape(refused.text)
    assert "Non classé : identifiant du fournisseur : aucun fournisseur 'nope' dans le catalogue" in page
