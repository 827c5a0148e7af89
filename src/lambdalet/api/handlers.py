"""One thin handler per operation: parse → validate → one store/invoker call → render.

The operations are grouped by resource, one module each (functions, invoke, versions and
aliases, settings, layers); :class:`Handlers` is all of them over one store and one invoker.
"""

from __future__ import annotations

from lambdalet.api.function_ops import FunctionOps
from lambdalet.api.handler_base import CODE_ROUTE, REQUEST_ID_KEY
from lambdalet.api.invoke_ops import InvokeOps
from lambdalet.api.layer_ops import LayerOps
from lambdalet.api.settings_ops import SettingsOps
from lambdalet.api.version_ops import VersionOps

__all__ = ["CODE_ROUTE", "REQUEST_ID_KEY", "Handlers"]


class Handlers(FunctionOps, InvokeOps, VersionOps, SettingsOps, LayerOps):
    """The Lambda API's operations over one store and one invoker."""
