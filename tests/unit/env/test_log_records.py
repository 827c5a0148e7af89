from __future__ import annotations

from pathlib import Path

from lambdalet.env.log_files import FunctionLog, LogLimits, log_files
from lambdalet.env.log_records import decode, encode, plain_text, read_events
from lambdalet.env.log_sink import LogStream


def test_a_traceback_joined_with_cr_is_one_event_of_several_lines() -> None:
    line = encode(1700000000123, "2026/11/27/[$LATEST]ab", b"[ERROR] boom\rTraceback:\r  x\n")
    assert line.count(b"\n") == 1
    ts, stream, message = decode(line[:-1])
    assert (ts, stream) == (1700000000123, "2026/11/27/[$LATEST]ab")
    assert message == "[ERROR] boom\nTraceback:\n  x\n"
    assert decode(encode(1, "s", b"a\r\n")[:-1])[2] == "a\n"


def test_old_plain_lines_still_read() -> None:
    assert decode(b"START RequestId: x Version: $LATEST") == (
        0,
        "",
        "START RequestId: x Version: $LATEST\n",
    )


def test_stream_writes_events_with_time_and_stream_and_ids_are_stable(tmp_path: Path) -> None:
    times = iter([1.0, 1.0, 2.5])
    log = FunctionLog(tmp_path, "fn", LogLimits())
    s = LogStream(log, "2026/11/27/[1]cafe", lambda: next(times))
    s.line("START RequestId: r Version: 1")
    s.raw(b"hello\n")
    s.lines("END RequestId: r", "REPORT RequestId: r\t")
    (tmp_path / "fn.log.1").write_bytes(encode(500, "old", b"before"))
    log.close()
    events = read_events(tmp_path, "fn")
    assert [e.timestamp for e in events] == [500, 1000, 1000, 2500, 2500]
    assert {e.stream for e in events[1:]} == {"2026/11/27/[1]cafe"}
    assert plain_text(events).endswith("hello\nEND RequestId: r\nREPORT RequestId: r\t\n")
    assert len({e.event_id for e in events}) == 5
    assert [e.event_id for e in read_events(tmp_path, "fn")] == [e.event_id for e in events]
    assert [p.name for p in log_files(tmp_path, "fn")] == ["fn.log.1", "fn.log"]
