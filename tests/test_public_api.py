from __future__ import annotations

import consent_gateway


def test_public_names_are_exported_once_and_sorted() -> None:
    public = [name for name in consent_gateway.__all__ if name != "__version__"]
    assert public == sorted(public)
    for name in consent_gateway.__all__:
        assert hasattr(consent_gateway, name), name


def test_version_is_a_release_string() -> None:
    major, minor, patch = consent_gateway.__version__.split(".")
    assert major.isdigit() and minor.isdigit() and patch.isdigit()
