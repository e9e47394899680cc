"""consent-gateway: server-side cookie consent and tracking gateway."""

__version__ = "0.1.0"
