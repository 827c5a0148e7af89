"""Presigned code-download URLs: signed, checked, expiring (with an injected clock)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from lambdalet.api.presign import MAX_TTL_S, CodeUrlSigner, Refusal

SHA = "ab" * 32


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


def _signed(signer: CodeUrlSigner, sha: str = SHA) -> dict[str, str]:
    return dict(parse_qsl(signer.query(sha)))


def _refusal(signer: CodeUrlSigner, query: dict[str, str], sha: str = SHA) -> Refusal:
    with pytest.raises(Refusal) as e:
        signer.check(sha, query)
    return e.value


def test_a_fresh_url_is_valid_until_its_lifetime_ends() -> None:
    clock = FakeClock(1_800_000_000.0)
    signer = CodeUrlSigner(clock, b"k" * 32)
    query = _signed(signer)
    assert query["X-Amz-Expires"] == "600"
    signer.check(SHA, query)
    clock.now += 600
    signer.check(SHA, query)
    clock.now += 1
    got = _refusal(signer, query)
    assert (got.code, got.message) == ("AccessDenied", "Request has expired")


@pytest.mark.parametrize(
    "change",
    [
        {"X-Amz-Signature": "0" * 64},
        {"X-Amz-Expires": "604800"},
        {"X-Amz-Date": "20991231T000000Z"},
    ],
)
def test_a_changed_url_does_not_match(change: dict[str, str]) -> None:
    signer = CodeUrlSigner(FakeClock(1_800_000_000.0), b"k" * 32)
    query = {**_signed(signer), **change}
    assert _refusal(signer, query).code == "SignatureDoesNotMatch"


def test_a_url_is_bound_to_its_code_and_its_server() -> None:
    clock = FakeClock(1_800_000_000.0)
    signer = CodeUrlSigner(clock, b"k" * 32)
    query = _signed(signer)
    assert _refusal(signer, query, "cd" * 32).code == "SignatureDoesNotMatch"
    other_server = CodeUrlSigner(clock)  # its own random secret
    assert _refusal(other_server, query).code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("missing", ["X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature"])
def test_an_unsigned_url_is_denied(missing: str) -> None:
    signer = CodeUrlSigner(FakeClock(1_800_000_000.0), b"k" * 32)
    query = _signed(signer)
    del query[missing]
    assert _refusal(signer, query).code == "AccessDenied"
    assert _refusal(signer, {}).code == "AccessDenied"


def test_a_lifetime_out_of_range_is_refused_even_when_signed() -> None:
    clock = FakeClock(1_800_000_000.0)
    for ttl in (0, MAX_TTL_S + 1):
        signer = CodeUrlSigner(clock, b"k" * 32, ttl_s=ttl)
        got = _refusal(signer, _signed(signer))
        assert got.code == "AuthorizationQueryParametersError"
