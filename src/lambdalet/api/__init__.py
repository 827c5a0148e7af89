"""The AWS Lambda API (2015-03-31 and friends) over HTTP."""

from lambdalet.api.app import TASKS_KEY, ApiParts, build_api_app

__all__ = ["TASKS_KEY", "ApiParts", "build_api_app"]
