"""What a visitor allows for one request: pure predicates, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    """The categories and vendors a visitor allows.

    A vendor is allowed when the visitor granted it by name, or granted its category and did not refuse
    the vendor by name. Required categories are always in ``granted``.
    """

    granted: frozenset[str]
    vendors_granted: frozenset[str] = frozenset()
    vendors_refused: frozenset[str] = frozenset()
    consent_id: str | None = None
    #: True when a valid, current choice of the visitor's stands behind this decision.
    explicit: bool = False
    #: The request carried ``Sec-GPC: 1``.
    gpc: bool = False
    #: The regional rule applied: "opt-in" (ask first), "opt-out" (allowed until refused), "none" (no banner).
    region: str = "opt-in"
    #: the site the page belongs to: the request Host's registrable domain (or the bare host for an IP or
    #: ``localhost``); URLs on other sites are third parties (see thirdparty.py)
    site: str = ""

    def allows_category(self, category: str) -> bool:
        return category in self.granted

    def allows_vendor(self, vendor_id: str, category: str) -> bool:
        if vendor_id in self.vendors_refused:
            return False
        return vendor_id in self.vendors_granted or category in self.granted

    @property
    def key(self) -> tuple[frozenset[str], frozenset[str], frozenset[str], str]:
        """What the rewritten bytes depend on: a cache key for per-decision work."""
        return (self.granted, self.vendors_granted, self.vendors_refused, self.site)
