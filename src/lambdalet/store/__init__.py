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
    aws_timestamp,
)
from lambdalet.store.sqlite import Store

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
