from __future__ import annotations

import pytest

from lambdalet.images.reference import BadReference, parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("uri", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/app:v1", "127.0.0.1:5000", "app", "v1", None),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:latest",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "team/app",
            "latest",
            None,
        ),
        (f"localhost/app@{DIGEST}", "localhost", "app", None, DIGEST),
        (
            f"public.ecr.aws/lambda/python:3.12@{DIGEST}",
            "public.ecr.aws",
            "lambda/python",
            "3.12",
            DIGEST,
        ),
        ("[::1]:5000/a/b-c:t_1", "[::1]:5000", "a/b-c", "t_1", None),
    ],
)
def test_parse(
    uri: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse(uri)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert str(ref) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "app:v1",  # no registry
        "127.0.0.1:5000/app",  # no tag nor digest: Lambda does not imply latest
        "127.0.0.1:5000/App:v1",  # repository names are lower case
        "127.0.0.1:5000/app:",
        "127.0.0.1:5000/app@sha256:short",
        "127.0.0.1:5000/app:" + "t" * 129,
        " 127.0.0.1:5000/app:v1",
    ],
)
def test_refused(uri: str) -> None:
    with pytest.raises(BadReference):
        parse(uri)


def test_pinned_and_loopback() -> None:
    ref = parse("localhost:5000/app:v1")
    assert ref.pinned(DIGEST) == f"localhost:5000/app@{DIGEST}"
    assert ref.is_loopback() and parse("127.0.0.2:1/a:b").is_loopback()
    assert parse("[::1]:5000/a:b").is_loopback()
    assert not parse("registry.example:5000/a:b").is_loopback()
    assert parse("registry.example:5000/a:b").host == "registry.example"
