"""The words of the visitor's own pages (`/_consent/me`, `/_consent/statistics`), in French and English."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .events import (
    CONSENT_GIVEN,
    CONSENT_UPDATED,
    CONSENT_WITHDRAWN,
    DATA_ERASED,
    GPC_APPLIED,
    PROCESSING_OBJECTED,
    SYNCED_FROM,
    SYNCED_FROM_ACCOUNT,
)

LANGUAGES: Final = ("fr", "en")

TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "fr": {
        "title": "Vos données de consentement",
        "colon": "\u00a0:",
        "intro": (
            "Cette page montre ce que ce site a enregistré de vos choix en matière de cookies sur ce navigateur, "
            "et vous permet d'en obtenir une copie, de les effacer ou de vous opposer au traitement."
        ),
        "none": "Aucun choix n'est enregistré pour ce navigateur.",
        "unavailable": (
            "Votre historique ne peut pas être lu pour l'instant : merci de réessayer dans un moment. Votre "
            "opposition ou votre demande d'effacement reste possible ci-dessous."
        ),
        "erased": "Vos données de consentement ont été effacées. Ce navigateur n'a plus d'identifiant de consentement.",
        "objected": (
            "Votre opposition est enregistrée : tout ce qui n'est pas strictement nécessaire est refusé, et "
            "l'équipe chargée de la protection des données en est informée."
        ),
        "consent_id": "Identifiant de consentement",
        "current": "Votre choix actuel",
        "no_current": (
            "Aucun choix en vigueur (retiré, ou demandé à nouveau après un changement de politique) : "
            "rien n'est activé sans votre accord."
        ),
        "granted": "Autorisé",
        "refused": "Refusé",
        "required": "Toujours actif (nécessaire)",
        "policy": "Version de la politique",
        "history": "Historique",
        "when": "Date (UTC)",
        "action": "Action",
        "categories": "Catégories autorisées",
        "banner": "Bandeau affiché",
        "nothing": "aucune",
        "download": "Télécharger mes données",
        "download_json": "Copie complète (JSON)",
        "download_dpv": "Registre de consentement (ISO/IEC TS 27560, W3C DPV, JSON-LD)",
        "object_title": "M'opposer au traitement ou le limiter",
        "object_text": (
            "Refuse toutes les catégories non nécessaires, sur ce navigateur, et signale votre demande à "
            "l'équipe chargée de la protection des données."
        ),
        "object": "Enregistrer mon opposition",
        "erase_title": "Effacer mes données de consentement",
        "erase_text": (
            "Efface l'adresse IP, le navigateur, la page et le site d'origine de chacun de vos choix. La preuve "
            "anonyme de vos choix reste dans le journal (obligation de preuve) ; ce navigateur reçoit un nouvel "
            "identifiant au prochain choix."
        ),
        "erase_confirm": "Je confirme l'effacement",
        "erase": "Effacer mes données",
        "confirm_needed": "Cochez la case pour confirmer l'effacement.",
        "privacy_policy": "Politique de confidentialité",
        "switch": "English",
        "stats_title": "Statistiques de consentement",
        "stats_intro": (
            "Part des visiteurs qui autorisent chaque catégorie, par mois : chaque visiteur compte une fois, avec "
            "son dernier choix du mois. Un mois n'est détaillé que s'il compte au moins {n} visiteurs ayant fait "
            "un choix pour la catégorie : aucune personne ne peut être identifiée."
        ),
        "month": "Mois",
        "rate": "Taux d'acceptation",
        "visitors": "Visiteurs",
        "hidden": "moins de {n} visiteurs : non publié",
        "no_stats": "Aucune statistique à publier pour l'instant.",
    },
    "en": {
        "title": "Your consent data",
        "colon": ":",
        "intro": (
            "This page shows what this site recorded of your cookie choices on this browser, and lets you get a "
            "copy, erase it, or object to the processing."
        ),
        "none": "No choice is recorded for this browser.",
        "unavailable": (
            "Your history cannot be read right now: please try again in a moment. You can still object or ask "
            "for erasure below."
        ),
        "erased": "Your consent data was erased. This browser no longer has a consent ID.",
        "objected": (
            "Your objection is recorded: everything that is not strictly necessary is refused, and the privacy "
            "team is told."
        ),
        "consent_id": "Consent ID",
        "current": "Your current choice",
        "no_current": (
            "No choice in force (withdrawn, or asked again after a policy change): nothing is turned on without "
            "your consent."
        ),
        "granted": "Allowed",
        "refused": "Refused",
        "required": "Always on (necessary)",
        "policy": "Policy version",
        "history": "History",
        "when": "Date (UTC)",
        "action": "Action",
        "categories": "Categories allowed",
        "banner": "Banner shown",
        "nothing": "none",
        "download": "Download my data",
        "download_json": "Full copy (JSON)",
        "download_dpv": "Consent record (ISO/IEC TS 27560, W3C DPV, JSON-LD)",
        "object_title": "Object to or limit the processing",
        "object_text": (
            "Refuses every category that is not necessary, on this browser, and flags your request to the privacy team."
        ),
        "object": "Record my objection",
        "erase_title": "Erase my consent data",
        "erase_text": (
            "Erases the IP address, browser, page and referring site of each of your choices. The anonymous proof "
            "of your choices stays in the log (proof obligation); this browser gets a new ID at its next choice."
        ),
        "erase_confirm": "I confirm the erasure",
        "erase": "Erase my data",
        "confirm_needed": "Tick the box to confirm the erasure.",
        "privacy_policy": "Privacy policy",
        "switch": "Français",
        "stats_title": "Consent statistics",
        "stats_intro": (
            "Share of visitors allowing each category, per month: each visitor counts once, with their last choice "
            "of the month. A month is shown only when at least {n} visitors made a choice for the category: no one "
            "can be identified."
        ),
        "month": "Month",
        "rate": "Acceptance rate",
        "visitors": "Visitors",
        "hidden": "fewer than {n} visitors: not published",
        "no_stats": "No statistics to publish yet.",
    },
}

ACTION_NAMES: Final[Mapping[str, Mapping[str, str]]] = {
    "fr": {
        CONSENT_GIVEN: "Premier choix",
        CONSENT_UPDATED: "Choix modifié",
        CONSENT_WITHDRAWN: "Consentement retiré",
        GPC_APPLIED: "Choix limité par Global Privacy Control",
        SYNCED_FROM: "Choix repris d'un site associé",
        SYNCED_FROM_ACCOUNT: "Choix repris de votre compte",
        PROCESSING_OBJECTED: "Opposition au traitement",
        DATA_ERASED: "Données effacées",
    },
    "en": {
        CONSENT_GIVEN: "First choice",
        CONSENT_UPDATED: "Choice changed",
        CONSENT_WITHDRAWN: "Consent withdrawn",
        GPC_APPLIED: "Choice narrowed by Global Privacy Control",
        SYNCED_FROM: "Choice carried from a sister site",
        SYNCED_FROM_ACCOUNT: "Choice carried from your account",
        PROCESSING_OBJECTED: "Objection to processing",
        DATA_ERASED: "Data erased",
    },
}
