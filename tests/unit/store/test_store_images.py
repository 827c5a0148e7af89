"""Image functions in the store: code rows of digests, versions, failures, used digests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdalet.model import ImageCode
from lambdalet.store import FunctionSpec, Store
from tests.unit.store.helpers import ROLE, ManualClock, open_store

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path, ManualClock())
    yield s
    s.close()


def create(store: Store, name: str = "img", digest: str = D1) -> None:
    spec = FunctionSpec(
        name=name,
        runtime="",
        handler="",
        role=ROLE,
        package_type="Image",
        image=ImageCode("127.0.0.1:5000/app:v1", digest, "", {"Command": ["a.b"]}),
    )
    store.create_function(spec, store.put_image_code(digest, 0))


def test_image_function_record(store: Store) -> None:
    create(store)
    rec = store.get_function("img")
    assert rec.package_type == "Image" and rec.state == "Pending"
    assert rec.image is not None
    assert rec.image.resolved_uri == f"127.0.0.1:5000/app@{D1}"
    assert rec.image.config == {"Command": ["a.b"]}
    assert rec.code_sha256 == "1" * 64 and rec.code_size == 0
    store.settle("img")
    version = store.publish_version("img", code_sha256="1" * 64)
    assert version.image == rec.image
    assert store.image_digests() == {D1}


def test_failed_pull_of_a_create_and_of_an_update(store: Store) -> None:
    create(store)
    failed = store.image_failed("img", "ImageDeleted", "gone")
    assert failed is not None
    assert (failed.state, failed.last_update_status) == ("Failed", "Failed")
    assert failed.status_reasons["StateReasonCode"] == "ImageDeleted"
    # an update of the Failed function is allowed; its own failure keeps the state
    rec = store.get_function("img")
    assert rec.image is not None
    new = ImageCode(rec.image.uri, D2, "", {})
    store.update_function_image("img", new, store.put_image_code(D2, 0))
    assert store.get_function("img").status_reasons == {}
    store.settle("img")
    store.update_function_image("img", new, store.put_image_code(D2, 0))
    after = store.image_failed("img", "ImageAccessDenied", "denied")
    assert after is not None
    assert (after.state, after.last_update_status) == ("Active", "Failed")
    assert "StateReasonCode" not in after.status_reasons
    assert after.status_reasons["LastUpdateStatusReasonCode"] == "ImageAccessDenied"
    assert store.image_digests() == {D2}
