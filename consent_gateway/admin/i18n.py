"""The dashboard's words in English and French: the one place they are written.

Templates call ``t("key", name=value)`` and ``tn("key", n)`` (plural: ``key.one`` / ``key.other``); page
code calls :func:`translate`. A key ending in ``_html`` holds markup: its values are escaped, its text is not.
The language comes from the switch's cookie, else from the browser's ``Accept-Language`` (French for ``fr*``,
English otherwise); no build step, and a test checks that both languages have every key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

from markupsafe import Markup

Language = Literal["en", "fr"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "fr")
DEFAULT: Final[Language] = "en"
#: Each language's name, written in that language (the switch shows them so).
NAMES: Final[Mapping[Language, str]] = {"en": "English", "fr": "Français"}
#: The switch's choice, kept for a year (a preference, not personal data: it holds only "en" or "fr").
COOKIE: Final = "cg_admin_lang"

_EN: Final[dict[str, str]] = {
    "colon": ":",
    "yes": "yes",
    "no": "no",
    # base
    "base.dashboard": "Dashboard",
    "base.skip": "Skip to content",
    "base.brand": "privacy dashboard",
    "base.language": "Language",
    "base.signed_in_as": "Signed in as",
    "base.log_out": "Log out",
    "base.audited": "Every action on this dashboard is written to the admin audit log.",
    "nav.overview": "Overview",
    "nav.events": "Events",
    "nav.visitors": "Visitor history",
    "nav.export": "Export",
    "nav.erase": "Erasure",
    "nav.integrity": "Integrity",
    "nav.cookies": "Cookies",
    "nav.inventory": "Inventory",
    "nav.enforcement": "Enforcement",
    # errors and messages from the page code
    "error.back": "Back to the overview",
    "error.unavailable_title": "Consent log unavailable",
    "error.unavailable": "The consent log cannot be reached right now. Try again in a moment.",
    "error.not_found_title": "Not found",
    "error.not_found": "There is no such page.",
    "error.no_event_title": "No such event",
    "error.no_event": "No event has the id {id}.",
    "error.audit_title": "Audit log unavailable",
    "error.audit": "The admin audit log cannot be written; nothing was changed",
    "error.forbidden": (
        "Forbidden: this form expired or was sent from another site. Go back, reload the page and try again."
    ),
    "error.role": (
        "Forbidden: your role ({role}) may not do this: it needs {needs} or above. "
        "Ask a dashboard admin to change your role."
    ),
    # login
    "login.title": "Log in",
    "login.no_credentials_html": (
        "No dashboard user is configured. Add <code>[[admin.users]]</code> to the configuration "
        "(<code>consent-gateway admin hash-password</code> makes a password hash) or set "
        "<code>CONSENT_GATEWAY_ADMIN_TOKENS</code>."
    ),
    "login.user_name": "User name",
    "login.password": "Password",
    "login.token_hint": "With an API token instead: leave the user name empty and paste the token as the password.",
    "login.submit": "Log in",
    "login.failed": "Wrong user name or password.",
    "login.locked": "Too many failed attempts. Try again in {minutes} minutes.",
    # values shown in tables
    "choice.granted": "granted",
    "choice.refused": "refused",
    "action.consent-given": "consent-given",
    "action.consent-updated": "consent-updated",
    "action.consent-withdrawn": "consent-withdrawn",
    "action.gpc-applied": "gpc-applied",
    "action.synced-from": "synced-from",
    "action.synced-from-account": "synced-from-account",
    "action.processing-objected": "processing-objected",
    "action.data-erased": "data-erased",
    "device.desktop": "desktop",
    "device.mobile": "mobile",
    "device.tablet": "tablet",
    "device.bot": "bot",
    "device.other": "other",
    "field.event_id": "Event id",
    "field.consent_id": "Consent id",
    "field.policy_version": "Policy version",
    "field.banner_version": "Banner version",
    "field.gpc": "GPC",
    "field.page_path": "Page",
    "field.referrer_host": "Referrer host",
    "field.ip": "IP address",
    "field.user_agent": "User agent",
    "field.browser": "Browser",
    "field.os": "Operating system",
    "field.device_type": "Device",
    "field.country": "Country",
    "field.is_eu": "EU",
    "field.region_rule": "Regional rule",
    "field.instance_id": "Instance",
    "field.seq": "Sequence",
    "field.prev_hash": "Previous hash",
    "field.hash": "Hash",
    "col.time_utc": "Time (UTC)",
    "col.action": "Action",
    "col.consent_id": "Consent id",
    "col.choices": "Choices",
    "col.country": "Country",
    "col.browser": "Browser",
    "col.device": "Device",
    "col.policy": "Policy",
    "col.details": "Details",
    # the search form (admin/filters.py)
    "filter.since": "From",
    "filter.since_time": "From time (UTC)",
    "filter.until": "To (included)",
    "filter.until_time": "To time (UTC, included)",
    "filter.action": "Action",
    "filter.any": "Any",
    "filter.category": "Granted category",
    "filter.country": "Country",
    "filter.browser": "Browser",
    "filter.device": "Device",
    "filter.policy_version": "Policy version",
    "filter.consent_id": "Consent id",
    "filter.ip": "IP address",
    "filter.error.order": "The end is before the start.",
    "filter.error.ip_role": "Your role does not see IP addresses.",
    "filter.error.ip": "Not an IP address.",
    "filter.error.action": "Unknown action.",
    "filter.error.category": "Unknown category.",
    "filter.error.device": "Unknown device type.",
    "filter.error.date_first": "Give the date too.",
    "filter.error.date": "Use a date like 2025-03-31.",
    "filter.error.time": "Use a time like 14:30 (UTC).",
    # events
    "events.title": "Events",
    "events.heading": "Consent events",
    "events.filter": "Filter events",
    "events.search": "Search",
    "events.clear": "Clear",
    "events.export_these": "Export these…",
    "events.fix_filters": "Fix the highlighted filters to search.",
    "events.matching.one": "{n} matching event",
    "events.matching.other": "{n} matching events",
    "events.later_page": "(later page)",
    "events.newest_first": ", newest first.",
    "events.caption": "Matching consent events, newest first",
    "events.of_event": "of event {id}",
    "events.pages": "Pages",
    "events.first_page": "First page",
    "events.next_page": "Next page",
    "events.stale_cursor": "This page link is no longer valid; showing the first page.",
    # one event
    "event.title": "Event {id}",
    "event.heading": "Consent event",
    "event.on": "on {when}",
    "event.all_of_visitor": "All events of this visitor",
    "event.erased_on": "Personal data erased on {when}.",
    "event.category": "Category",
    "event.choice": "Choice",
    "event.vendor": "Vendor",
    "event.record": "Record",
    "event.erased": "erased",
    "event.banner_shown": "Banner shown",
    "event.banner_version_html": (
        "Version <span class=\"mono\">{version}</span>, archived in the consent log the first time it was served"
    ),
    "event.hashes": "the archive hashes to this version",
    "event.not_hashes": "the archive does not hash to this version",
    "event.archived_json": "archived JSON",
    "event.policy_version": "Policy version {version}",
    "event.privacy_policy": "privacy policy",
    "event.vendors_listed.one": "{n} vendor listed",
    "event.vendors_listed.other": "{n} vendors listed",
    "event.position": "position {position}",
    "event.texts_in": "Texts in",
    "event.buttons": "Buttons:",
    "event.label_shown": "Label and description shown",
    "event.required": "(required)",
    "event.vendors_summary.one": "Vendors listed ({n})",
    "event.vendors_summary.other": "Vendors listed ({n})",
    "event.not_archived_html": (
        "Version <span class=\"mono\">{version}</span>: not in the archive (recorded before banner versions were "
        "archived, or the log did not answer)."
    ),
    "event.erase": "Erase this visitor's personal data…",
    # a visitor's history
    "visitor.title": "Visitor history",
    "visitor.find": "Find a visitor",
    "visitor.show": "Show history",
    "visitor.hint_html": "A visitor finds their consent id in their own receipt (<code>/_consent/receipt</code>).",
    "visitor.erased.one": (
        "Personal data erased from {n} event. The events stay in the log, without IP, user agent, page or referrer."
    ),
    "visitor.erased.other": (
        "Personal data erased from {n} events. The events stay in the log, without IP, user agent, page or referrer."
    ),
    "visitor.count_html.one": "{n} event for <code>{id}</code>, oldest first.",
    "visitor.count_html.other": "{n} events for <code>{id}</code>, oldest first.",
    "visitor.download_jsonl": "Download as JSON Lines",
    "visitor.erase": "Erase…",
    "visitor.policy": "policy {version}",
    "visitor.objection": "objection: to review",
    "visitor.erased_by_visitor": "erased by the visitor",
    "visitor.banner": "banner",
    "visitor.details": "Details and banner shown",
    "visitor.erased_at": "Personal data erased {when}.",
    "visitor.unknown_country": "unknown country",
    "visitor.unknown_browser": "unknown browser",
    "visitor.unknown_device": "unknown device",
    "visitor.none_html": "No event has the consent id <code>{id}</code>.",
    # export
    "export.title": "Export",
    "export.heading": "Export consent events",
    "export.lede_html": (
        "Download the events that match these filters, oldest first. CSV cells that a spreadsheet could read as a "
        "formula start with <code>'</code>. The export is written to the admin audit log."
    ),
    "export.filters": "Export filters",
    "export.personal": "Personal columns (IP address, user agent, page, referrer)",
    "export.proof": "Proof columns (chain position, hash, previous hash, MAC, commitments)",
    "export.include": "Include",
    "export.leave_out": "Leave out",
    "export.no_personal": "Your role exports no personal columns (IP address, user agent, page, referrer).",
    "export.same_as_cli_html": (
        "The same columns, in the same order, as <code>consent-gateway logs export</code>; the salts of the "
        "commitments come only with both personal and proof columns."
    ),
    "export.csv": "Download CSV",
    "export.jsonl": "Download JSON Lines",
    "export.banners": "Download the banners shown (JSON)",
    "export.scripts_html": (
        "For scripts: <code>curl -H \"Authorization: Bearer $TOKEN\" …{root}/export.jsonl?since=2025-01-01"
        "&amp;personal=no</code> with a token from <code>CONSENT_GATEWAY_ADMIN_TOKENS</code>."
    ),
    # erasure
    "erase.title": "Erasure",
    "erase.heading": "Erase a visitor's personal data",
    "erase.lede": (
        "Erasure removes the IP address, user agent, page and referrer from every event of one consent id. "
        "The choices themselves stay (they are the proof of consent), and the log still verifies. "
        "You will see what will be erased before anything changes."
    ),
    "erase.review": "Review erasure…",
    "erase.confirm_title": "Confirm erasure",
    "erase.summary_html.one": (
        "Consent id <code>{id}</code> has {n} event, from {first} to {last}; {holding} still hold personal data."
    ),
    "erase.summary_html.other": (
        "Consent id <code>{id}</code> has {n} events, from {first} to {last}; {holding} still hold personal data."
    ),
    "erase.what": "What will be erased",
    "erase.understand": "I understand that this erasure cannot be undone.",
    "erase.submit.one": "Erase personal data of {n} event",
    "erase.submit.other": "Erase personal data of {n} events",
    "erase.cancel": "Cancel",
    "erase.enter_id": "Enter a consent id.",
    "erase.no_event": "No event has this consent id.",
    "erase.tick": "Tick the box to confirm the erasure.",
    "erase.refused_title": "Erasure refused",
    "erase.refused": "The admin audit log cannot be written, so nothing was erased.",
    "erase.queued_title": "Erasure queued",
    "erase.queued": (
        "The consent log cannot be reached right now. The erasure of {id} is queued on disk and applied as soon as "
        "the consent log answers again; the audit log records when."
    ),
    # integrity
    "integrity.title": "Integrity",
    "integrity.heading": "Integrity of the consent log",
    "integrity.lede": (
        "Every event is chained by hash to the one before it on the same gateway instance. "
        "Verification recomputes each chain and finds an edited, inserted or deleted event."
    ),
    "integrity.chains.one": "{n} chain",
    "integrity.chains.other": "{n} chains",
    "integrity.checked.one": "{n} event in {chains}",
    "integrity.checked.other": "{n} events in {chains}",
    "integrity.verified": "Verified.",
    "integrity.verified_text": "{checked} are intact, up to a signed checkpoint of every chain head ({seconds} s).",
    "integrity.not_proven": "Not proven.",
    "integrity.not_proven_text": (
        "No alteration found in {checked} ({seconds} s), but no signed checkpoint covers the newest events, "
        "so this could not be proven:"
    ),
    "integrity.altered": "The log has been altered.",
    "integrity.events_checked.one": "{n} event checked",
    "integrity.events_checked.other": "{n} events checked",
    "integrity.problems.one": "{n} problem in {checked}.",
    "integrity.problems.other": "{n} problems in {checked}.",
    "integrity.first_broken": "First broken:",
    "integrity.problems_caption": "Problems found, in chain order",
    "integrity.event": "Event",
    "integrity.problem": "Problem",
    "integrity.verify": "Verify the whole log now",
    "integrity.heads": "Chain heads",
    "integrity.heads_hint_html": (
        "Keep a copy of these outside the store (<code>consent-gateway logs checkpoint</code>): it lets a later "
        "verification notice events missing at the end of a chain."
    ),
    "integrity.instance": "Instance",
    "integrity.last_seq": "Last sequence",
    "integrity.last_hash": "Last hash",
    "integrity.empty": "The log is empty.",
    "integrity.store": "Store",
    "health.backend": "Backend",
    "health.durable": "Durable",
    "health.error": "Error",
    "health.events": "Events",
    "health.ok": "Ok",
    "health.path": "Path",
    "health.prefix": "Prefix",
    "health.url": "Url",
    # overview
    "overview.title": "Overview",
    "overview.legend": "Legend",
    "overview.period": "Period",
    "overview.days": "{n} days",
    "overview.lede": "Consent events from {first} to {today} (UTC).",
    "overview.objections_html.one": (
        "<strong>{n}</strong> objection to processing recorded by visitors from their own page in this period "
        "(every optional category refused): <a href=\"{href}\">review them</a>."
    ),
    "overview.objections_html.other": (
        "<strong>{n}</strong> objections to processing recorded by visitors from their own page in this period "
        "(every optional category refused): <a href=\"{href}\">review them</a>."
    ),
    "overview.summary": "Summary",
    "overview.events": "consent events",
    "overview.visitors": "visitors",
    "overview.once_a_day": "(each counted once a day)",
    "overview.granted": "granted {label}",
    "overview.of": "{granted} of {total}",
    "overview.ok": "OK",
    "overview.down": "Down",
    "overview.log": "consent log ({backend})",
    "overview.in_all": ", {n} events in all",
    "overview.over_time": "Consent rate per category over time",
    "overview.as_table": "Show the data as a table",
    "overview.day_caption": "Share of consent events that granted each category, per day (UTC)",
    "overview.day": "Day",
    "overview.events_col": "Events",
    "overview.visitors_col": "Visitors",
    "overview.no_events": "No consent events in this period.",
    "overview.per_visitor": "of visitors",
    "overview.of_visitor_days": "{granted} of {total}, each visitor counted once a day",
    "overview.visitor_rates": "Consent rate per category and visitor over time",
    "overview.visitor_line_title": "Consent rate per category and visitor, last {days} days",
    "overview.visitor_day_caption": (
        "Share of visitors whose last choice of the day granted each category, per day (UTC); "
        "visitors with a choice in brackets"
    ),
    "overview.help_title": "How these figures are counted",
    "overview.help_events": (
        "Per event: every consent event carrying a choice for a category counts, so a visitor who changes their "
        "mind three times counts three times."
    ),
    "overview.help_visitors": (
        "Per visitor: each visitor (consent id) counts once a day, with the last choice they made that day (UTC). "
        "A visitor who grants then refuses on the same day counts once, as refusing; one who comes back another "
        "day counts again on that day, so over a period the per-visitor rate adds up visitor-days. A visitor who "
        "erased their data from their own page counts for no category on the day of the erasure; erasing the "
        "personal fields of past events changes no figure, and events removed by retention leave the figures "
        "with them."
    ),
    "overview.help_public": (
        "The public statistics page, when it is on, counts each visitor once a month, with their last choice of "
        "the month, and publishes no figure for a group of fewer visitors than its minimum."
    ),
    "overview.bar_caption": "{title} (events in brackets)",
    "overview.line_title": "Consent rate per category, last {days} days",
    "overview.vendor_granted": "Granted",
    "group.country": "Country",
    "group.browser": "Browser",
    "group.device": "Device",
    "group.policy_version": "Policy version",
    "group.vendor": "Vendor",
    "chart.by.country": "Consent rate by country",
    "chart.by.browser": "Consent rate by browser",
    "chart.by.device": "Consent rate by device type",
    "chart.by.policy_version": "Consent rate by policy version",
    "chart.by.vendor": "Grant rate by vendor",
    # the charts (admin/charts.py)
    "chart.no_data": "no data",
    "chart.empty": "No consent events in this period",
    "chart.empty_summary": "No consent events in this period.",
    "chart.point": "{name}, {group}: {rate} ({granted} of {total})",
    "chart.line_summary": (
        "Share of consent events that granted each category per day, {first} to {last}. Overall: {overall}."
    ),
    "chart.visitor_line_summary": (
        "Share of visitors whose last choice of the day granted each category, per day, {first} to {last}. "
        "Overall, each visitor counted once a day: {overall}."
    ),
    "chart.bar_summary": "Share of consent events that granted each category. {groups}.",
    "chart.bar_group": "{group} ({events}): {rates}",
    "chart.hidden": " {n} smaller groups are only in the table.",
    "chart.events.one": "{n} event",
    "chart.events.other": "{n} events",
    # cookies
    "cookies.title": "Cookie inventory",
    "cookies.count": "Count",
    "cookies.lede": (
        "What the Set-Cookie filter of every gateway instance has seen, from the inventory kept in the consent "
        "log's store (merged every few seconds, kept across restarts)."
    ),
    "cookies.unknown": "Cookies the catalog does not know ({n})",
    "cookies.unknown_hint_html": (
        "Unknown cookies are currently <strong>{policy}</strong> (<code>[gateway] unknown_cookies</code>). "
        "Add the ones you recognise to <code>[[vendors]]</code> so they wait for consent."
    ),
    "cookies.allowed": "allowed and counted",
    "cookies.blocked": "blocked",
    "cookies.no_unknown": "No unknown cookie seen yet.",
    "cookies.dropped": "Cookies dropped for lack of consent ({n})",
    "cookies.no_dropped": "No cookie dropped yet.",
    "cookie_col.cookie": "Cookie",
    "cookie_col.domain": "Domain",
    "cookie_col.vendor": "Vendor",
    # inventory and classification
    "inventory.heading": "What the site uses",
    "inventory.export_button": "Export classifications as [[vendors]]",
    "inventory.lede_html": (
        "Every third-party host, cookie and storage name the gateway saw on the site, shared by every instance, "
        "with its vendor by the catalog in force. Classify what nobody did yet: it applies on every instance's "
        "next page, and the published <a href=\"{declaration}\">cookie declaration</a> follows."
    ),
    "inventory.saved_html": "Saved: <strong class=\"mono\">{done}</strong>. Every instance applies it within seconds.",
    "inventory.not_classified": "Not classified:",
    "inventory.hosts": "Third-party hosts",
    "inventory.unclassified_hosts": "Hosts nobody classified",
    "inventory.cookies": "Cookies",
    "inventory.browser_names": "Browser names",
    "inventory.show": "Show",
    "inventory.everything": "Everything",
    "inventory.unclassified_only": "Unclassified only",
    "inventory.section.host": "Third-party hosts",
    "inventory.section.cookie": "Cookies set by the site",
    "inventory.section.storage": "Cookie and storage names in visitors' browsers",
    "inventory.name": "Name",
    "inventory.vendor_category": "Vendor and category",
    "inventory.held_allowed": "Held / allowed",
    "inventory.dropped_passed": "Dropped / passed",
    "inventory.where": "Where",
    "inventory.seen": "First and last seen (UTC)",
    "inventory.classification": "Classification",
    "inventory.unclassified": "unclassified",
    "inventory.capped": "capped {n}×",
    "inventory.undo": "Undo",
    "inventory.officer_classifies": "a privacy officer classifies it",
    "inventory.by_catalog": "by the catalog",
    "inventory.most_recent_html": (
        "The {n} most recently seen are shown; <a href=\"{href}\">inventory.json</a> has them all."
    ),
    "inventory.nothing_seen": "Nothing seen yet.",
    "inventory.nothing_classified": "Nothing classified yet.",
    "inventory.classifications": "Classifications ({n})",
    "inventory.classifications_hint_html": (
        "Laid over the config's catalog on every instance; <a href=\"{href}\">export them</a> as "
        "<code>[[vendors]]</code> to keep them in the config file under version control."
    ),
    "inventory.subject": "Subject",
    "inventory.decision": "Decision",
    "inventory.by": "By",
    "inventory.when": "When (UTC)",
    "kind.host": "host",
    "kind.cookie": "cookie",
    "kind.storage": "storage",
    "decision.vendor": "vendor",
    "decision.new-vendor": "new vendor",
    "decision.essential": "essential",
    "classify.classify": "Classify",
    "classify.is": "{name} is…",
    "classify.catalog_vendor": "a catalog vendor's",
    "classify.vendor_id_placeholder": "vendor id",
    "classify.vendor_id": "Vendor id",
    "classify.new_vendor": "a new vendor's",
    "classify.name_placeholder": "name",
    "classify.new_vendor_name": "New vendor's name",
    "classify.new_vendor_category": "New vendor's category",
    "classify.policy_placeholder": "https://… privacy policy",
    "classify.new_vendor_policy": "New vendor's privacy policy URL",
    "classify.essential": "essential, because",
    "classify.reason_placeholder": "why the site needs it",
    "classify.reason": "Why it is essential",
    # ClassificationError (classification.py) by its reason
    "classify.error.one_of": "{field}: expected one of {choices}",
    "classify.error.not_host": "{field}: not a host name: {name!r}",
    "classify.error.not_cookie": "{field}: not a cookie name: {name!r}",
    "classify.error.not_storage": "{field}: expected a storage key name of 1 to 200 printable characters",
    "classify.error.still_used": (
        "{subject} created the vendor {vendor!r}, to which {others} still belong: reassign them first"
    ),
    "classify.error.no_vendor": "{field}: no vendor {vendor!r} in the catalog",
    "classify.error.url": "{field}: expected an http(s) URL",
    "classify.error.no_letter": "{field}: needs at least one letter or digit",
    "classify.error.vendor_exists": "{field}: a vendor {vendor!r} is already in the catalog: assign to it instead",
    "classify.error.no_required_category": "the config has no required category to put essential items in",
    "classify.error.id_taken": "{field}: the vendor id {vendor!r} is taken in the catalog",
    "classify.error.required": "{field}: is required",
    "classify.error.too_long": "{field}: at most {limit} characters",
    "classify.error.printable": "{field}: only printable characters",
    "classify.error.nothing_to_undo": "no classification to undo",
    "classify.field.kind": "kind",
    "classify.field.subject": "subject",
    "classify.field.action": "decision",
    "classify.field.vendor_id": "vendor id",
    "classify.field.vendor_name": "vendor name",
    "classify.field.category": "category",
    "classify.field.policy_url": "privacy policy URL",
    "classify.field.reason": "reason",
    "classify.field.lifetime": "lifetime",
    # users and tokens (admin/users.py)
    "nav.users": "Users and tokens",
    "users.title": "Users and tokens",
    "users.lede_html": (
        "Who may use this dashboard, and with which role: <strong>viewer</strong> (charts and figures), "
        "<strong>analyst</strong> (search and export without IP addresses), <strong>privacy-officer</strong> "
        "(personal data and erasure), <strong>admin</strong> (this page too). Users and tokens made here are kept "
        "in the consent log's store and hold on every instance; those of the config are changed in the config. "
        "Every change is in the admin audit log."
    ),
    "users.nothing_changed": "Nothing changed:",
    "users.secret_token_html": (
        "API token for <strong class=\"mono\">{name}</strong>, shown <strong>this once</strong>: copy it now and "
        "hand it over safely. Only its hash is kept, so nobody can show it again."
    ),
    "users.secret_password_html": (
        "Password for <strong class=\"mono\">{name}</strong>, shown <strong>this once</strong>: copy it now and "
        "hand it over safely. Only its hash is kept, so nobody can show it again."
    ),
    "users.the_secret": "The new secret",
    "users.send_as_html": "Send it as <code>Authorization: Bearer …</code>.",
    "users.users": "Users",
    "users.role": "Role",
    "users.state": "State",
    "users.made": "Made",
    "users.changes": "Changes",
    "users.active": "active",
    "users.disabled": "disabled",
    "users.in_config": "in the config",
    "users.read_only_users": "read-only here: [[admin.users]]",
    "users.read_only": "read-only here",
    "users.you": "(you)",
    "users.role_of": "Role of {name}",
    "users.change": "Change",
    "users.the_role_of": "the role of {name}",
    "users.by": "by {name}",
    "users.action.enable": "Enable",
    "users.action.disable": "Disable",
    "users.action.reset": "New password",
    "users.action.remove": "Remove",
    "users.new_user": "New user",
    "users.with_role": "with role",
    "users.make_user": "Make user",
    "users.password_shown_once": "a password is made and shown once",
    "users.tokens": "API tokens",
    "users.token": "Token",
    "users.for": "For",
    "users.from_environment": "from the environment",
    "users.revoke": "Revoke",
    "users.no_token": "No API token yet.",
    "users.new_token": "New token for",
    "users.token_placeholder": "e.g. nightly export",
    "users.make_token": "Make token",
    "users.shown_once": "shown once",
    "users.error.name": (
        "A user name is 1 to 64 letters, digits or . _ @ - (starting with a letter or digit, and not 'token')."
    ),
    "users.error.role": "Choose a role: {roles}.",
    "users.error.in_config": "{name!r} is a user of the config ([[admin.users]]).",
    "users.error.action": "Unknown change: choose one of {actions}.",
    "users.error.config_user": "{name!r} is a user of the config: change it in [[admin.users]], not here.",
    "users.error.lower_self": "You cannot lower your own role: ask another admin.",
    "users.error.disable_self": "You cannot disable yourself: ask another admin.",
    "users.error.remove_self": "You cannot remove yourself: ask another admin.",
    "users.error.label": "Say what the token is for in 1 to {max} characters.",
    "users.error.audit": "The admin audit log cannot be written, so nothing changed.",
    "users.error.user_exists": "a user named {name!r} exists already",
    "users.error.token_exists": "a token with this id exists already; make another",
    "users.error.no_token": "there is no token {id!r} made from the dashboard (revoked already?)",
    "users.error.no_user": "there is no user {name!r} made from the dashboard (removed already?)",
    "users.done.made": "User {name} made ({role}).",
    "users.done.role": "{name} is now {role}; it applies at their next click.",
    "users.done.disabled": "{name} is disabled: their sessions have ended.",
    "users.done.enabled": "{name} may log in again.",
    "users.done.removed": "{name} is removed: their sessions have ended.",
    "users.done.password": "New password for {name}.",
    "users.done.token": "Token {name} made ({role}).",
    "users.done.revoked": "Token {name} is revoked on every instance.",
    # enforcement
    "enforcement.heading": "Loaded without consent",
    "enforcement.lede_html": (
        "What visitors' browsers reported through the CSP backstop (<code>[csp] mode = \"{mode}\"</code>): a load "
        "the visitor had not consented to, such as a tracker a tag manager injected after the page."
    ),
    "enforcement.blocked": "The browser blocked each of them.",
    "enforcement.report_html": (
        "In report mode the browser only reported them: switch to <code>enforce</code> to block them."
    ),
    "enforcement.off": "The backstop is off: nothing is reported.",
    "enforcement.classify_html": "Classify the hosts you recognise on the <a href=\"{href}\">inventory</a>.",
    "enforcement.caption.one": "{n} reported load, most recent first",
    "enforcement.caption.other": "{n} reported loads, most recent first",
    "enforcement.host": "Host",
    "enforcement.page": "Page",
    "enforcement.directive": "Directive",
    "enforcement.consent": "Visitor's consent",
    "enforcement.first_seen": "First seen",
    "enforcement.last_seen": "Last seen",
    "enforcement.classified": "classified",
    "enforcement.none": "No load without consent was reported.",
}

_FR: Final[dict[str, str]] = {
    "colon": "\u00a0:",
    "yes": "oui",
    "no": "non",
    "base.dashboard": "Tableau de bord",
    "base.skip": "Aller au contenu",
    "base.brand": "tableau de bord vie privée",
    "base.language": "Langue",
    "base.signed_in_as": "Connecté en tant que",
    "base.log_out": "Se déconnecter",
    "base.audited": "Chaque action sur ce tableau de bord est inscrite au journal d'audit de l'administration.",
    "nav.overview": "Vue d'ensemble",
    "nav.events": "Événements",
    "nav.visitors": "Historique d'un visiteur",
    "nav.export": "Export",
    "nav.erase": "Effacement",
    "nav.integrity": "Intégrité",
    "nav.cookies": "Cookies",
    "nav.inventory": "Inventaire",
    "nav.enforcement": "Blocages",
    "error.back": "Retour à la vue d'ensemble",
    "error.unavailable_title": "Journal des consentements indisponible",
    "error.unavailable": "Le journal des consentements est injoignable pour le moment. Réessayez dans un instant.",
    "error.not_found_title": "Page introuvable",
    "error.not_found": "Cette page n'existe pas.",
    "error.no_event_title": "Événement introuvable",
    "error.no_event": "Aucun événement n'a l'identifiant {id}.",
    "error.audit_title": "Journal d'audit indisponible",
    "error.audit": "Le journal d'audit de l'administration ne peut pas être écrit : rien n'a été modifié",
    "error.forbidden": (
        "Interdit : ce formulaire a expiré ou a été envoyé depuis un autre site. Revenez en arrière, rechargez "
        "la page et réessayez."
    ),
    "error.role": (
        "Interdit : votre rôle ({role}) ne permet pas cette action, qui demande {needs} ou plus. "
        "Demandez à un administrateur du tableau de bord de changer votre rôle."
    ),
    "login.title": "Connexion",
    "login.no_credentials_html": (
        "Aucun utilisateur du tableau de bord n'est configuré. Ajoutez <code>[[admin.users]]</code> à la "
        "configuration (<code>consent-gateway admin hash-password</code> produit une empreinte de mot de passe) "
        "ou définissez <code>CONSENT_GATEWAY_ADMIN_TOKENS</code>."
    ),
    "login.user_name": "Nom d'utilisateur",
    "login.password": "Mot de passe",
    "login.token_hint": (
        "Avec un jeton d'API : laissez le nom d'utilisateur vide et collez le jeton comme mot de passe."
    ),
    "login.submit": "Se connecter",
    "login.failed": "Nom d'utilisateur ou mot de passe incorrect.",
    "login.locked": "Trop de tentatives échouées. Réessayez dans {minutes} minutes.",
    "choice.granted": "autorisé",
    "choice.refused": "refusé",
    "action.consent-given": "consentement donné",
    "action.consent-updated": "consentement modifié",
    "action.consent-withdrawn": "consentement retiré",
    "action.gpc-applied": "GPC appliqué",
    "action.synced-from": "repris d'un site associé",
    "action.synced-from-account": "repris du compte",
    "action.processing-objected": "opposition au traitement",
    "action.data-erased": "données effacées",
    "device.desktop": "ordinateur",
    "device.mobile": "mobile",
    "device.tablet": "tablette",
    "device.bot": "robot",
    "device.other": "autre",
    "field.event_id": "Identifiant d'événement",
    "field.consent_id": "Identifiant de consentement",
    "field.policy_version": "Version de la politique",
    "field.banner_version": "Version du bandeau",
    "field.gpc": "GPC",
    "field.page_path": "Page",
    "field.referrer_host": "Site d'origine",
    "field.ip": "Adresse IP",
    "field.user_agent": "Agent utilisateur",
    "field.browser": "Navigateur",
    "field.os": "Système d'exploitation",
    "field.device_type": "Appareil",
    "field.country": "Pays",
    "field.is_eu": "UE",
    "field.region_rule": "Règle régionale",
    "field.instance_id": "Instance",
    "field.seq": "Position dans la chaîne",
    "field.prev_hash": "Empreinte précédente",
    "field.hash": "Empreinte",
    "col.time_utc": "Date (UTC)",
    "col.action": "Action",
    "col.consent_id": "Identifiant de consentement",
    "col.choices": "Choix",
    "col.country": "Pays",
    "col.browser": "Navigateur",
    "col.device": "Appareil",
    "col.policy": "Politique",
    "col.details": "Détails",
    "filter.since": "Du",
    "filter.since_time": "Heure de début (UTC)",
    "filter.until": "Au (inclus)",
    "filter.until_time": "Heure de fin (UTC, incluse)",
    "filter.action": "Action",
    "filter.any": "Toutes",
    "filter.category": "Catégorie autorisée",
    "filter.country": "Pays",
    "filter.browser": "Navigateur",
    "filter.device": "Appareil",
    "filter.policy_version": "Version de la politique",
    "filter.consent_id": "Identifiant de consentement",
    "filter.ip": "Adresse IP",
    "filter.error.order": "La fin précède le début.",
    "filter.error.ip_role": "Votre rôle ne voit pas les adresses IP.",
    "filter.error.ip": "Ce n'est pas une adresse IP.",
    "filter.error.action": "Action inconnue.",
    "filter.error.category": "Catégorie inconnue.",
    "filter.error.device": "Type d'appareil inconnu.",
    "filter.error.date_first": "Indiquez aussi la date.",
    "filter.error.date": "Saisissez une date comme 2025-03-31.",
    "filter.error.time": "Saisissez une heure comme 14:30 (UTC).",
    "events.title": "Événements",
    "events.heading": "Événements de consentement",
    "events.filter": "Filtrer les événements",
    "events.search": "Rechercher",
    "events.clear": "Effacer les filtres",
    "events.export_these": "Exporter ces événements…",
    "events.fix_filters": "Corrigez les filtres signalés pour lancer la recherche.",
    "events.matching.one": "{n} événement correspondant",
    "events.matching.other": "{n} événements correspondants",
    "events.later_page": "(page suivante)",
    "events.newest_first": ", du plus récent au plus ancien.",
    "events.caption": "Événements de consentement correspondants, du plus récent au plus ancien",
    "events.of_event": "de l'événement {id}",
    "events.pages": "Pages",
    "events.first_page": "Première page",
    "events.next_page": "Page suivante",
    "events.stale_cursor": "Ce lien de page n'est plus valable : voici la première page.",
    "event.title": "Événement {id}",
    "event.heading": "Événement de consentement",
    "event.on": "le {when}",
    "event.all_of_visitor": "Tous les événements de ce visiteur",
    "event.erased_on": "Données personnelles effacées le {when}.",
    "event.category": "Catégorie",
    "event.choice": "Choix",
    "event.vendor": "Fournisseur",
    "event.record": "Enregistrement",
    "event.erased": "effacé",
    "event.banner_shown": "Bandeau affiché",
    "event.banner_version_html": (
        "Version <span class=\"mono\">{version}</span>, archivée dans le journal des consentements la première "
        "fois qu'elle a été servie"
    ),
    "event.hashes": "l'archive correspond à l'empreinte de cette version",
    "event.not_hashes": "l'archive ne correspond pas à l'empreinte de cette version",
    "event.archived_json": "JSON archivé",
    "event.policy_version": "Version de la politique {version}",
    "event.privacy_policy": "politique de confidentialité",
    "event.vendors_listed.one": "{n} fournisseur listé",
    "event.vendors_listed.other": "{n} fournisseurs listés",
    "event.position": "position {position}",
    "event.texts_in": "Textes en",
    "event.buttons": "Boutons :",
    "event.label_shown": "Libellé et description affichés",
    "event.required": "(nécessaire)",
    "event.vendors_summary.one": "Fournisseur listé ({n})",
    "event.vendors_summary.other": "Fournisseurs listés ({n})",
    "event.not_archived_html": (
        "Version <span class=\"mono\">{version}</span> : absente de l'archive (enregistrée avant l'archivage des "
        "versions du bandeau, ou le journal n'a pas répondu)."
    ),
    "event.erase": "Effacer les données personnelles de ce visiteur…",
    "visitor.title": "Historique d'un visiteur",
    "visitor.find": "Trouver un visiteur",
    "visitor.show": "Afficher l'historique",
    "visitor.hint_html": (
        "Un visiteur trouve son identifiant de consentement dans son propre reçu (<code>/_consent/receipt</code>)."
    ),
    "visitor.erased.one": (
        "Données personnelles effacées de {n} événement. Les événements restent dans le journal, sans IP, agent "
        "utilisateur, page ni site d'origine."
    ),
    "visitor.erased.other": (
        "Données personnelles effacées de {n} événements. Les événements restent dans le journal, sans IP, agent "
        "utilisateur, page ni site d'origine."
    ),
    "visitor.count_html.one": "{n} événement pour <code>{id}</code>, du plus ancien au plus récent.",
    "visitor.count_html.other": "{n} événements pour <code>{id}</code>, du plus ancien au plus récent.",
    "visitor.download_jsonl": "Télécharger en JSON Lines",
    "visitor.erase": "Effacer…",
    "visitor.policy": "politique {version}",
    "visitor.objection": "opposition : à examiner",
    "visitor.erased_by_visitor": "effacé par le visiteur",
    "visitor.banner": "bandeau",
    "visitor.details": "Détails et bandeau affiché",
    "visitor.erased_at": "Données personnelles effacées le {when}.",
    "visitor.unknown_country": "pays inconnu",
    "visitor.unknown_browser": "navigateur inconnu",
    "visitor.unknown_device": "appareil inconnu",
    "visitor.none_html": "Aucun événement n'a l'identifiant de consentement <code>{id}</code>.",
    "export.title": "Export",
    "export.heading": "Exporter les événements de consentement",
    "export.lede_html": (
        "Téléchargez les événements qui correspondent à ces filtres, du plus ancien au plus récent. Les cellules "
        "CSV qu'un tableur pourrait lire comme une formule commencent par <code>'</code>. L'export est inscrit au "
        "journal d'audit de l'administration."
    ),
    "export.filters": "Filtres de l'export",
    "export.personal": "Colonnes personnelles (adresse IP, agent utilisateur, page, site d'origine)",
    "export.proof": "Colonnes de preuve (position dans la chaîne, empreinte, empreinte précédente, MAC, engagements)",
    "export.include": "Inclure",
    "export.leave_out": "Exclure",
    "export.no_personal": (
        "Votre rôle n'exporte aucune colonne personnelle (adresse IP, agent utilisateur, page, site d'origine)."
    ),
    "export.same_as_cli_html": (
        "Les mêmes colonnes, dans le même ordre, que <code>consent-gateway logs export</code> ; les sels des "
        "engagements ne sont inclus qu'avec les colonnes personnelles et les colonnes de preuve."
    ),
    "export.csv": "Télécharger en CSV",
    "export.jsonl": "Télécharger en JSON Lines",
    "export.banners": "Télécharger les bandeaux affichés (JSON)",
    "export.scripts_html": (
        "Pour les scripts : <code>curl -H \"Authorization: Bearer $TOKEN\" …{root}/export.jsonl?since=2025-01-01"
        "&amp;personal=no</code> avec un jeton de <code>CONSENT_GATEWAY_ADMIN_TOKENS</code>."
    ),
    "erase.title": "Effacement",
    "erase.heading": "Effacer les données personnelles d'un visiteur",
    "erase.lede": (
        "L'effacement retire l'adresse IP, l'agent utilisateur, la page et le site d'origine de chaque événement "
        "d'un identifiant de consentement. Les choix eux-mêmes restent (ils sont la preuve du consentement), et le "
        "journal se vérifie toujours. Vous verrez ce qui sera effacé avant toute modification."
    ),
    "erase.review": "Examiner l'effacement…",
    "erase.confirm_title": "Confirmer l'effacement",
    "erase.summary_html.one": (
        "L'identifiant de consentement <code>{id}</code> a {n} événement, du {first} au {last} ; {holding} "
        "contient encore des données personnelles."
    ),
    "erase.summary_html.other": (
        "L'identifiant de consentement <code>{id}</code> a {n} événements, du {first} au {last} ; {holding} "
        "contiennent encore des données personnelles."
    ),
    "erase.what": "Ce qui sera effacé",
    "erase.understand": "Je comprends que cet effacement est irréversible.",
    "erase.submit.one": "Effacer les données personnelles de {n} événement",
    "erase.submit.other": "Effacer les données personnelles de {n} événements",
    "erase.cancel": "Annuler",
    "erase.enter_id": "Saisissez un identifiant de consentement.",
    "erase.no_event": "Aucun événement n'a cet identifiant de consentement.",
    "erase.tick": "Cochez la case pour confirmer l'effacement.",
    "erase.refused_title": "Effacement refusé",
    "erase.refused": "Le journal d'audit de l'administration ne peut pas être écrit : rien n'a été effacé.",
    "erase.queued_title": "Effacement en attente",
    "erase.queued": (
        "Le journal des consentements est injoignable pour le moment. L'effacement de {id} est mis en attente "
        "sur disque et appliqué dès que le journal répond de nouveau ; le journal d'audit en garde la date."
    ),
    "integrity.title": "Intégrité",
    "integrity.heading": "Intégrité du journal des consentements",
    "integrity.lede": (
        "Chaque événement est chaîné par empreinte au précédent de la même instance de la passerelle. "
        "La vérification recalcule chaque chaîne et trouve un événement modifié, inséré ou supprimé."
    ),
    "integrity.chains.one": "{n} chaîne",
    "integrity.chains.other": "{n} chaînes",
    "integrity.checked.one": "{n} événement dans {chains}",
    "integrity.checked.other": "{n} événements dans {chains}",
    "integrity.verified": "Vérifié.",
    "integrity.verified_text": (
        "{checked} : intacts, jusqu'à un point de contrôle signé de chaque tête de chaîne ({seconds} s)."
    ),
    "integrity.not_proven": "Non prouvé.",
    "integrity.not_proven_text": (
        "Aucune altération trouvée dans {checked} ({seconds} s), mais aucun point de contrôle signé ne couvre les "
        "événements les plus récents : ceci n'a pas pu être prouvé :"
    ),
    "integrity.altered": "Le journal a été altéré.",
    "integrity.events_checked.one": "{n} événement vérifié",
    "integrity.events_checked.other": "{n} événements vérifiés",
    "integrity.problems.one": "{n} problème dans {checked}.",
    "integrity.problems.other": "{n} problèmes dans {checked}.",
    "integrity.first_broken": "Premier événement rompu :",
    "integrity.problems_caption": "Problèmes trouvés, dans l'ordre des chaînes",
    "integrity.event": "Événement",
    "integrity.problem": "Problème",
    "integrity.verify": "Vérifier tout le journal maintenant",
    "integrity.heads": "Têtes de chaîne",
    "integrity.heads_hint_html": (
        "Gardez-en une copie hors du stockage (<code>consent-gateway logs checkpoint</code>) : une vérification "
        "ultérieure pourra alors repérer des événements manquants en fin de chaîne."
    ),
    "integrity.instance": "Instance",
    "integrity.last_seq": "Dernière position",
    "integrity.last_hash": "Dernière empreinte",
    "integrity.empty": "Le journal est vide.",
    "integrity.store": "Stockage",
    "health.backend": "Moteur",
    "health.durable": "Durable",
    "health.error": "Erreur",
    "health.events": "Événements",
    "health.ok": "Disponible",
    "health.path": "Chemin",
    "health.prefix": "Préfixe",
    "health.url": "URL",
    "overview.title": "Vue d'ensemble",
    "overview.legend": "Légende",
    "overview.period": "Période",
    "overview.days": "{n} jours",
    "overview.lede": "Événements de consentement du {first} au {today} (UTC).",
    "overview.objections_html.one": (
        "<strong>{n}</strong> opposition au traitement enregistrée par un visiteur depuis sa propre page sur cette "
        "période (toutes les catégories facultatives refusées) : <a href=\"{href}\">l'examiner</a>."
    ),
    "overview.objections_html.other": (
        "<strong>{n}</strong> oppositions au traitement enregistrées par des visiteurs depuis leur propre page sur "
        "cette période (toutes les catégories facultatives refusées) : <a href=\"{href}\">les examiner</a>."
    ),
    "overview.summary": "Résumé",
    "overview.events": "événements de consentement",
    "overview.visitors": "visiteurs",
    "overview.once_a_day": "(chacun compté une fois par jour)",
    "overview.granted": "ont autorisé {label}",
    "overview.of": "{granted} sur {total}",
    "overview.ok": "OK",
    "overview.down": "Hors service",
    "overview.log": "journal des consentements ({backend})",
    "overview.in_all": ", {n} événements au total",
    "overview.over_time": "Taux de consentement par catégorie dans le temps",
    "overview.as_table": "Afficher les données sous forme de tableau",
    "overview.day_caption": "Part des événements de consentement qui ont autorisé chaque catégorie, par jour (UTC)",
    "overview.day": "Jour",
    "overview.events_col": "Événements",
    "overview.visitors_col": "Visiteurs",
    "overview.no_events": "Aucun événement de consentement sur cette période.",
    "overview.per_visitor": "des visiteurs",
    "overview.of_visitor_days": "{granted} sur {total}, chaque visiteur compté une fois par jour",
    "overview.visitor_rates": "Taux de consentement par catégorie et par visiteur dans le temps",
    "overview.visitor_line_title": "Taux de consentement par catégorie et par visiteur, {days} derniers jours",
    "overview.visitor_day_caption": (
        "Part des visiteurs dont le dernier choix de la journée a autorisé chaque catégorie, par jour (UTC)\u00a0; "
        "visiteurs ayant fait un choix entre parenthèses"
    ),
    "overview.help_title": "Comment ces chiffres sont comptés",
    "overview.help_events": (
        "Par événement\u00a0: chaque événement de consentement portant un choix pour une catégorie compte, si bien "
        "qu'un visiteur qui change trois fois d'avis compte trois fois."
    ),
    "overview.help_visitors": (
        "Par visiteur\u00a0: chaque visiteur (identifiant de consentement) compte une fois par jour, avec le dernier "
        "choix qu'il a fait ce jour-là (UTC). Un visiteur qui autorise puis refuse le même jour compte une fois, "
        "comme refusant\u00a0; un visiteur qui revient un autre jour compte de nouveau ce jour-là, si bien que sur "
        "une période le taux par visiteur additionne des jours-visiteurs. Un visiteur qui a effacé ses données "
        "depuis son espace ne compte pour aucune catégorie le jour de l'effacement\u00a0; effacer les champs "
        "personnels d'événements passés ne change aucun chiffre, et les événements supprimés par la durée de "
        "conservation emportent leur part des chiffres."
    ),
    "overview.help_public": (
        "La page publique de statistiques, quand elle est activée, compte chaque visiteur une fois par mois, avec "
        "son dernier choix du mois, et ne publie aucun chiffre pour un groupe de moins de visiteurs que son minimum."
    ),
    "overview.bar_caption": "{title} (événements entre parenthèses)",
    "overview.line_title": "Taux de consentement par catégorie, {days} derniers jours",
    "overview.vendor_granted": "Autorisé",
    "group.country": "Pays",
    "group.browser": "Navigateur",
    "group.device": "Appareil",
    "group.policy_version": "Version de la politique",
    "group.vendor": "Fournisseur",
    "chart.by.country": "Taux de consentement par pays",
    "chart.by.browser": "Taux de consentement par navigateur",
    "chart.by.device": "Taux de consentement par type d'appareil",
    "chart.by.policy_version": "Taux de consentement par version de la politique",
    "chart.by.vendor": "Taux d'autorisation par fournisseur",
    "chart.no_data": "pas de données",
    "chart.empty": "Aucun événement de consentement sur cette période",
    "chart.empty_summary": "Aucun événement de consentement sur cette période.",
    "chart.point": "{name}, {group}\u00a0: {rate} ({granted} sur {total})",
    "chart.line_summary": (
        "Part des événements de consentement ayant autorisé chaque catégorie, par jour, du {first} au {last}. "
        "Sur la période\u00a0: {overall}."
    ),
    "chart.visitor_line_summary": (
        "Part des visiteurs dont le dernier choix de la journée a autorisé chaque catégorie, par jour, du {first} "
        "au {last}. Sur la période, chaque visiteur compté une fois par jour\u00a0: {overall}."
    ),
    "chart.bar_summary": "Part des événements de consentement ayant autorisé chaque catégorie. {groups}.",
    "chart.bar_group": "{group} ({events})\u00a0: {rates}",
    "chart.hidden": " {n} groupes plus petits ne figurent que dans le tableau.",
    "chart.events.one": "{n} événement",
    "chart.events.other": "{n} événements",
    "cookies.title": "Inventaire des cookies",
    "cookies.count": "Nombre",
    "cookies.lede": (
        "Ce que le filtre Set-Cookie de chaque instance de la passerelle a vu, d'après l'inventaire gardé dans le "
        "stockage du journal des consentements (fusionné toutes les quelques secondes, conservé entre les "
        "redémarrages)."
    ),
    "cookies.unknown": "Cookies inconnus du catalogue ({n})",
    "cookies.unknown_hint_html": (
        "Les cookies inconnus sont actuellement <strong>{policy}</strong> (<code>[gateway] unknown_cookies</code>). "
        "Ajoutez ceux que vous reconnaissez à <code>[[vendors]]</code> pour qu'ils attendent le consentement."
    ),
    "cookies.allowed": "autorisés et comptés",
    "cookies.blocked": "bloqués",
    "cookies.no_unknown": "Aucun cookie inconnu vu pour l'instant.",
    "cookies.dropped": "Cookies supprimés faute de consentement ({n})",
    "cookies.no_dropped": "Aucun cookie supprimé pour l'instant.",
    "cookie_col.cookie": "Cookie",
    "cookie_col.domain": "Domaine",
    "cookie_col.vendor": "Fournisseur",
    "inventory.heading": "Ce que le site utilise",
    "inventory.export_button": "Exporter les classements en [[vendors]]",
    "inventory.lede_html": (
        "Chaque hôte tiers, cookie et nom de stockage que la passerelle a vu sur le site, partagé par toutes les "
        "instances, avec son fournisseur selon le catalogue en vigueur. Classez ce que personne n'a encore classé : "
        "cela s'applique dès la page suivante de chaque instance, et la <a href=\"{declaration}\">déclaration des "
        "cookies</a> publiée suit."
    ),
    "inventory.saved_html": (
        "Enregistré : <strong class=\"mono\">{done}</strong>. Chaque instance l'applique en quelques secondes."
    ),
    "inventory.not_classified": "Non classé :",
    "inventory.hosts": "Hôtes tiers",
    "inventory.unclassified_hosts": "Hôtes que personne n'a classés",
    "inventory.cookies": "Cookies",
    "inventory.browser_names": "Noms dans le navigateur",
    "inventory.show": "Afficher",
    "inventory.everything": "Tout",
    "inventory.unclassified_only": "Non classés seulement",
    "inventory.section.host": "Hôtes tiers",
    "inventory.section.cookie": "Cookies déposés par le site",
    "inventory.section.storage": "Noms de cookies et de stockage dans les navigateurs des visiteurs",
    "inventory.name": "Nom",
    "inventory.vendor_category": "Fournisseur et catégorie",
    "inventory.held_allowed": "Retenus / autorisés",
    "inventory.dropped_passed": "Supprimés / transmis",
    "inventory.where": "Emplacement",
    "inventory.seen": "Vu la première et la dernière fois (UTC)",
    "inventory.classification": "Classement",
    "inventory.unclassified": "non classé",
    "inventory.capped": "plafonné {n}×",
    "inventory.undo": "Annuler",
    "inventory.officer_classifies": "un délégué à la protection des données le classe",
    "inventory.by_catalog": "par le catalogue",
    "inventory.most_recent_html": (
        "Les {n} vus le plus récemment sont affichés ; <a href=\"{href}\">inventory.json</a> les contient tous."
    ),
    "inventory.nothing_seen": "Rien vu pour l'instant.",
    "inventory.nothing_classified": "Rien n'est classé pour l'instant.",
    "inventory.classifications": "Classements ({n})",
    "inventory.classifications_hint_html": (
        "Appliqués par-dessus le catalogue de la configuration sur chaque instance ; <a href=\"{href}\">exportez-"
        "les</a> en <code>[[vendors]]</code> pour les garder dans le fichier de configuration, sous contrôle de "
        "version."
    ),
    "inventory.subject": "Objet",
    "inventory.decision": "Décision",
    "inventory.by": "Par",
    "inventory.when": "Date (UTC)",
    "kind.host": "hôte",
    "kind.cookie": "cookie",
    "kind.storage": "stockage",
    "decision.vendor": "fournisseur",
    "decision.new-vendor": "nouveau fournisseur",
    "decision.essential": "essentiel",
    "classify.classify": "Classer",
    "classify.is": "{name} est…",
    "classify.catalog_vendor": "d'un fournisseur du catalogue",
    "classify.vendor_id_placeholder": "identifiant",
    "classify.vendor_id": "Identifiant du fournisseur",
    "classify.new_vendor": "d'un nouveau fournisseur",
    "classify.name_placeholder": "nom",
    "classify.new_vendor_name": "Nom du nouveau fournisseur",
    "classify.new_vendor_category": "Catégorie du nouveau fournisseur",
    "classify.policy_placeholder": "https://… politique de confidentialité",
    "classify.new_vendor_policy": "URL de la politique de confidentialité du nouveau fournisseur",
    "classify.essential": "essentiel, parce que",
    "classify.reason_placeholder": "pourquoi le site en a besoin",
    "classify.reason": "Pourquoi il est essentiel",
    "classify.error.one_of": "{field} : attendu parmi {choices}",
    "classify.error.not_host": "{field} : ce n'est pas un nom d'hôte : {name!r}",
    "classify.error.not_cookie": "{field} : ce n'est pas un nom de cookie : {name!r}",
    "classify.error.not_storage": "{field} : un nom de stockage de 1 à 200 caractères imprimables est attendu",
    "classify.error.still_used": (
        "{subject} a créé le fournisseur {vendor!r}, auquel {others} appartiennent encore : réattribuez-les d'abord"
    ),
    "classify.error.no_vendor": "{field} : aucun fournisseur {vendor!r} dans le catalogue",
    "classify.error.url": "{field} : une URL http(s) est attendue",
    "classify.error.no_letter": "{field} : au moins une lettre ou un chiffre",
    "classify.error.vendor_exists": (
        "{field} : un fournisseur {vendor!r} est déjà dans le catalogue : rattachez-le plutôt à celui-ci"
    ),
    "classify.error.no_required_category": (
        "la configuration n'a pas de catégorie nécessaire où ranger les éléments essentiels"
    ),
    "classify.error.id_taken": "{field} : l'identifiant de fournisseur {vendor!r} est déjà pris dans le catalogue",
    "classify.error.required": "{field} : obligatoire",
    "classify.error.too_long": "{field} : {limit} caractères au plus",
    "classify.error.printable": "{field} : caractères imprimables uniquement",
    "classify.error.nothing_to_undo": "aucun classement à annuler",
    "classify.field.kind": "type",
    "classify.field.subject": "objet",
    "classify.field.action": "décision",
    "classify.field.vendor_id": "identifiant du fournisseur",
    "classify.field.vendor_name": "nom du fournisseur",
    "classify.field.category": "catégorie",
    "classify.field.policy_url": "URL de la politique de confidentialité",
    "classify.field.reason": "raison",
    "classify.field.lifetime": "durée",
    "nav.users": "Utilisateurs et jetons",
    "users.title": "Utilisateurs et jetons",
    "users.lede_html": (
        "Qui peut utiliser ce tableau de bord, et avec quel rôle : <strong>viewer</strong> (graphiques et "
        "chiffres), <strong>analyst</strong> (recherche et export sans adresses IP), <strong>privacy-officer</strong> "
        "(données personnelles et effacement), <strong>admin</strong> (cette page aussi). Les utilisateurs et jetons "
        "créés ici sont gardés dans le stockage du journal des consentements et valent sur chaque instance ; ceux "
        "de la configuration se modifient dans la configuration. Chaque changement est inscrit au journal d'audit "
        "de l'administration."
    ),
    "users.nothing_changed": "Rien n'a changé :",
    "users.secret_token_html": (
        "Jeton d'API pour <strong class=\"mono\">{name}</strong>, affiché <strong>cette seule fois</strong> : "
        "copiez-le maintenant et transmettez-le de façon sûre. Seule son empreinte est gardée : personne ne pourra "
        "l'afficher de nouveau."
    ),
    "users.secret_password_html": (
        "Mot de passe pour <strong class=\"mono\">{name}</strong>, affiché <strong>cette seule fois</strong> : "
        "copiez-le maintenant et transmettez-le de façon sûre. Seule son empreinte est gardée : personne ne pourra "
        "l'afficher de nouveau."
    ),
    "users.the_secret": "Le nouveau secret",
    "users.send_as_html": "Envoyez-le en <code>Authorization: Bearer …</code>.",
    "users.users": "Utilisateurs",
    "users.role": "Rôle",
    "users.state": "État",
    "users.made": "Créé",
    "users.changes": "Modifications",
    "users.active": "actif",
    "users.disabled": "désactivé",
    "users.in_config": "dans la configuration",
    "users.read_only_users": "lecture seule ici : [[admin.users]]",
    "users.read_only": "lecture seule ici",
    "users.you": "(vous)",
    "users.role_of": "Rôle de {name}",
    "users.change": "Modifier",
    "users.the_role_of": "le rôle de {name}",
    "users.by": "par {name}",
    "users.action.enable": "Réactiver",
    "users.action.disable": "Désactiver",
    "users.action.reset": "Nouveau mot de passe",
    "users.action.remove": "Supprimer",
    "users.new_user": "Nouvel utilisateur",
    "users.with_role": "avec le rôle",
    "users.make_user": "Créer l'utilisateur",
    "users.password_shown_once": "un mot de passe est créé et affiché une seule fois",
    "users.tokens": "Jetons d'API",
    "users.token": "Jeton",
    "users.for": "Pour",
    "users.from_environment": "depuis l'environnement",
    "users.revoke": "Révoquer",
    "users.no_token": "Aucun jeton d'API pour l'instant.",
    "users.new_token": "Nouveau jeton pour",
    "users.token_placeholder": "p. ex. export nocturne",
    "users.make_token": "Créer le jeton",
    "users.shown_once": "affiché une seule fois",
    "users.error.name": (
        "Un nom d'utilisateur fait 1 à 64 lettres, chiffres ou . _ @ - (commençant par une lettre ou un chiffre, et "
        "autre que « token »)."
    ),
    "users.error.role": "Choisissez un rôle : {roles}.",
    "users.error.in_config": "{name!r} est un utilisateur de la configuration ([[admin.users]]).",
    "users.error.action": "Modification inconnue : choisissez parmi {actions}.",
    "users.error.config_user": (
        "{name!r} est un utilisateur de la configuration : modifiez-le dans [[admin.users]], pas ici."
    ),
    "users.error.lower_self": "Vous ne pouvez pas abaisser votre propre rôle : demandez à un autre admin.",
    "users.error.disable_self": "Vous ne pouvez pas vous désactiver vous-même : demandez à un autre admin.",
    "users.error.remove_self": "Vous ne pouvez pas vous supprimer vous-même : demandez à un autre admin.",
    "users.error.label": "Dites à quoi sert le jeton, en 1 à {max} caractères.",
    "users.error.audit": "Le journal d'audit de l'administration ne peut pas être écrit : rien n'a changé.",
    "users.error.user_exists": "un utilisateur nommé {name!r} existe déjà",
    "users.error.token_exists": "un jeton avec cet identifiant existe déjà : créez-en un autre",
    "users.error.no_token": "aucun jeton {id!r} créé depuis le tableau de bord (déjà révoqué ?)",
    "users.error.no_user": "aucun utilisateur {name!r} créé depuis le tableau de bord (déjà supprimé ?)",
    "users.done.made": "Utilisateur {name} créé ({role}).",
    "users.done.role": "{name} a désormais le rôle {role} ; cela s'applique à son prochain clic.",
    "users.done.disabled": "{name} est désactivé : ses sessions sont terminées.",
    "users.done.enabled": "{name} peut de nouveau se connecter.",
    "users.done.removed": "{name} est supprimé : ses sessions sont terminées.",
    "users.done.password": "Nouveau mot de passe pour {name}.",
    "users.done.token": "Jeton {name} créé ({role}).",
    "users.done.revoked": "Le jeton {name} est révoqué sur chaque instance.",
    "enforcement.heading": "Chargé sans consentement",
    "enforcement.lede_html": (
        "Ce que les navigateurs des visiteurs ont signalé par le filet de sécurité CSP (<code>[csp] mode = "
        "\"{mode}\"</code>) : un chargement auquel le visiteur n'avait pas consenti, comme un traceur qu'un "
        "gestionnaire de balises a injecté après la page."
    ),
    "enforcement.blocked": "Le navigateur a bloqué chacun d'eux.",
    "enforcement.report_html": (
        "En mode rapport, le navigateur les a seulement signalés : passez en <code>enforce</code> pour les bloquer."
    ),
    "enforcement.off": "Le filet de sécurité est désactivé : rien n'est signalé.",
    "enforcement.classify_html": "Classez les hôtes que vous reconnaissez dans l'<a href=\"{href}\">inventaire</a>.",
    "enforcement.caption.one": "{n} chargement signalé, le plus récent d'abord",
    "enforcement.caption.other": "{n} chargements signalés, les plus récents d'abord",
    "enforcement.host": "Hôte",
    "enforcement.page": "Page",
    "enforcement.directive": "Directive",
    "enforcement.consent": "Consentement du visiteur",
    "enforcement.first_seen": "Vu la première fois",
    "enforcement.last_seen": "Vu la dernière fois",
    "enforcement.classified": "classé",
    "enforcement.none": "Aucun chargement sans consentement n'a été signalé.",
}

MESSAGES: Final[Mapping[Language, Mapping[str, str]]] = {"en": _EN, "fr": _FR}


def language_of(chosen: str | None, accept_language: str | None) -> Language:
    """The switch's choice (its cookie) when valid, else the browser's: French for ``fr*`` when it comes before
    English in ``Accept-Language`` (by weight, then order), else English."""
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        quality = re.fullmatch(r"\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*", params)
        if params and quality is None:
            continue
        if quality is not None:
            weight = float(quality.group(1))
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, index, primary))
    return min(ranked)[2] if ranked else DEFAULT  # type: ignore[return-value]


def translate(lang: Language, key: str, /, **values: object) -> str:
    """The text of ``key`` in ``lang`` with ``values`` put in; a key missing from the catalog raises KeyError."""
    text = MESSAGES[lang][key]
    if key.endswith("_html") or "_html." in key:
        return Markup(text).format(**values)  # noqa: S704 - the catalog's own markup; every value is escaped
    return text.format(**values) if values else text


def translate_plural(lang: Language, key: str, n: int, /, **values: object) -> str:
    """``key.one`` or ``key.other`` by ``n`` (French counts 0 and 1 as singular), with ``n`` written as a number."""
    form = "one" if (n <= 1 if lang == "fr" else n == 1) else "other"
    return translate(lang, f"{key}.{form}", n=number(lang, n), **values)


def label(lang: Language, kind: str, value: str, default: str | None = None) -> str:
    """A value shown in a table (an action, a device type, a field…) in ``lang``; an unknown one as it is."""
    return MESSAGES[lang].get(f"{kind}.{value}", value if default is None else default)


def number(lang: Language, n: int) -> str:
    """``1,234`` in English, ``1 234`` in French (a narrow no-break space)."""
    return f"{n:,}".replace(",", "\u202f") if lang == "fr" else f"{n:,}"


def decimal(lang: Language, value: float, places: int) -> str:
    text = f"{value:.{places}f}"
    return text.replace(".", ",") if lang == "fr" else text


def percent(lang: Language, rate: float | None) -> str:
    """``62%`` in English, ``62 %`` in French; None: no data."""
    if rate is None:
        return translate(lang, "chart.no_data")
    return f"{rate * 100:.0f}\u00a0%" if lang == "fr" else f"{rate * 100:.0f}%"


def classification_message(lang: Language, field: str, message: str, reason: str, values: Mapping[str, object]) -> str:
    """A refused classification's reason (``ClassificationError``) in ``lang``; one without a reason the catalog
    holds, as it is (in English)."""
    known = MESSAGES[lang].get(f"classify.error.{reason}") if reason else None
    return message if known is None else known.format(field=label(lang, "classify.field", field), **values)


def directory_message(lang: Language, message: str, reason: str, values: Mapping[str, object]) -> str:
    """A refused change of users or tokens (``DirectoryError``) in ``lang``, like :func:`classification_message`."""
    known = MESSAGES[lang].get(f"users.error.{reason}") if reason else None
    return message if known is None else known.format(**values)
