"""Persistent state of the control plane: functions, layer versions, code blobs."""

from lambdalet.store.records import (
    CodeBlob,
    FunctionPatch,
    FunctionSpec,
    LayerKey,
    LayerVersionRecord,
    LayerVersionSpec,
    LoggingSettings,
    Page,
)
from lambdalet.store.sqlite import Store, aws_timestamp

__all__ = [
    "CodeBlob",
    "FunctionPatch",
    "FunctionSpec",
    "LayerKey",
    "LayerVersionRecord",
    "LayerVersionSpec",
    "LoggingSettings",
    "Page",
    "Store",
    "aws_timestamp",
]
