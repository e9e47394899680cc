"""The privacy team's dashboard, mounted by the gateway at ``{prefix}/admin``."""

from __future__ import annotations

from consent_gateway.admin.app import build_admin_app
from consent_gateway.admin.auth import hash_password, verify_password

__all__ = ["build_admin_app", "hash_password", "verify_password"]
