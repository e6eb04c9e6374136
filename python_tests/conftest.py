"""Shared test fixtures. Set EIRNN_FAST_REQUIRE_COMPILED=1 (CI does) to fail instead of silently
testing only the references when the extension did not build."""

import os

import pytest

import eirnn_fast


def pytest_report_header(config):
    return f"eirnn_fast backend: {eirnn_fast.backend_info()}"


def pytest_sessionstart(session):
    if os.environ.get("EIRNN_FAST_REQUIRE_COMPILED") == "1" and not eirnn_fast.backend_info()["compiled"]:
        raise pytest.UsageError(
            "EIRNN_FAST_REQUIRE_COMPILED=1 but eirnn_fast._C is not importable: "
            + eirnn_fast.backend_info().get("import_error", "")
        )
