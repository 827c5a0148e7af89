"""The live dashboard: one self-contained HTML page that polls the admin JSON endpoints."""

from lambdalet.dashboard.app import build_dashboard_app

__all__ = ["build_dashboard_app"]
