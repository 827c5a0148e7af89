from __future__ import annotations

import asyncio

import pytest

from lambdalet.env.mailbox import Mailbox


async def test_put_hands_over_to_a_waiting_call() -> None:
    box: Mailbox[str] = Mailbox()
    waiting = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    assert box.put("event") is True
    assert await waiting == "event"
    assert box.kept is None


async def test_put_without_a_waiter_keeps_the_item() -> None:
    box: Mailbox[str] = Mailbox()
    assert box.put("event") is False
    assert box.kept == "event"
    assert box.take_kept() == "event"
    assert box.take_kept() is None


async def test_a_newer_wait_replaces_the_older_and_cancel_fails_it() -> None:
    box: Mailbox[str] = Mailbox()
    old = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    new = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        await old
    box.cancel()
    with pytest.raises(asyncio.CancelledError):
        await new
    box.put("x")
    box.cancel()
    assert box.kept is None
