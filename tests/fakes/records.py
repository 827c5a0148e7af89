"""Function records for tests that run environments without the store."""

from __future__ import annotations

from pathlib import Path

from lambdalet.model import FunctionRecord, LayerRef

ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


def function_record(
    root: Path,
    *,
    name: str = "fn",
    timeout_s: int = 3,
    layers: tuple[Path, ...] = (),
    revision_id: str = "r1",
) -> FunctionRecord:
    """A $LATEST python function whose (empty) code is under ``root``."""
    code = root / f"code-{name}"
    code.mkdir(parents=True, exist_ok=True)
    arn = ARN.replace(":fn", f":{name}")
    return FunctionRecord(
        name=name,
        version="$LATEST",
        arn=arn,
        runtime="python3.12",
        handler="app.handler",
        role="arn:aws:iam::123456789012:role/r",
        memory_mb=128,
        timeout_s=timeout_s,
        ephemeral_mb=512,
        environment={},
        layers=tuple(LayerRef(f"{arn}-layer:{i}", 1, d) for i, d in enumerate(layers)),
        code_dir=code,
        code_sha256="",
        code_size=0,
        revision_id=revision_id,
    )
