"""HTTP/1.1 request trailers, read from the raw bytes of one connection (pure, no I/O).

A runtime that streams its response reports a failure in the chunked body's trailers
(``Lambda-Runtime-Function-Error-Type`` / ``-Body``).  aiohttp's server parses trailers
and drops them, so the in-sandbox server gives each connection a :class:`TrailerScanner`
that sees the same bytes first: it follows the request framing (head, then a
``Content-Length`` body or chunks) without copying bodies, and keeps the trailers of the
latest request whose body ended.  By the time aiohttp reports that body's end to the
handler, the scanner has read the trailers.
"""

from __future__ import annotations

from enum import Enum, auto

#: a head or trailer section larger than this stops the scanner (aiohttp refuses it anyway)
MAX_SECTION_BYTES = 4 * 1024 * 1024


class _State(Enum):
    HEAD = auto()
    LENGTH_BODY = auto()
    CHUNK_SIZE = auto()
    CHUNK_DATA = auto()
    CHUNK_END = auto()
    TRAILERS = auto()
    BROKEN = auto()


def _fields(lines: list[bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return out


class TrailerScanner:
    def __init__(self) -> None:
        self._state = _State.HEAD
        self._buf = bytearray()
        self._left = 0
        self._trailer_lines: list[bytes] = []
        #: trailers (lower-case names) of the latest request whose body ended
        self.last_trailers: dict[str, str] = {}
        #: how many requests have ended so far
        self.completed = 0

    @property
    def broken(self) -> bool:
        return self._state is _State.BROKEN

    def _line(self) -> bytes | None:
        pos = self._buf.find(b"\r\n")
        if pos < 0:
            if len(self._buf) > MAX_SECTION_BYTES:
                self._state = _State.BROKEN
            return None
        line = bytes(self._buf[:pos])
        del self._buf[: pos + 2]
        return line

    def _end_message(self, trailers: dict[str, str]) -> None:
        self.last_trailers = trailers
        self.completed += 1
        self._state = _State.HEAD

    def _head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_SECTION_BYTES:
                self._state = _State.BROKEN
            return False
        lines = bytes(self._buf[:end]).split(b"\r\n")[1:]
        del self._buf[: end + 4]
        fields = _fields(lines)
        if "chunked" in fields.get("transfer-encoding", "").lower():
            self._state = _State.CHUNK_SIZE
            return True
        try:
            length = int(fields.get("content-length", "0"))
        except ValueError:
            self._state = _State.BROKEN
            return False
        if length > 0:
            self._left = length
            self._state = _State.LENGTH_BODY
        else:
            self._end_message({})
        return True

    def _skip(self) -> bool:
        take = min(self._left, len(self._buf))
        del self._buf[:take]
        self._left -= take
        return self._left == 0

    def feed(self, data: bytes) -> None:
        if self._state is _State.BROKEN:
            return
        if self._state in (_State.LENGTH_BODY, _State.CHUNK_DATA) and not self._buf:
            # the common case of body bytes: count them without copying
            take = min(self._left, len(data))
            self._left -= take
            data = data[take:]
            if self._left == 0:
                if self._state is _State.LENGTH_BODY:
                    self._end_message({})
                else:
                    self._state = _State.CHUNK_END
        self._buf += data
        while self._buf or self._state is _State.HEAD:
            if not self._step():
                return

    def _step(self) -> bool:
        """Advance once; False when more bytes are needed."""
        state = self._state
        if state is _State.HEAD:
            return bool(self._buf) and self._head()
        if state is _State.LENGTH_BODY:
            if self._skip():
                self._end_message({})
                return True
            return False
        if state is _State.CHUNK_SIZE:
            line = self._line()
            if line is None:
                return False
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._state = _State.BROKEN
                return False
            if size == 0:
                self._trailer_lines = []
                self._state = _State.TRAILERS
            else:
                self._left = size
                self._state = _State.CHUNK_DATA
            return True
        if state is _State.CHUNK_DATA:
            if self._skip():
                self._state = _State.CHUNK_END
                return True
            return False
        if state is _State.CHUNK_END:
            if len(self._buf) < 2:
                return False
            del self._buf[:2]
            self._state = _State.CHUNK_SIZE
            return True
        if state is _State.TRAILERS:
            line = self._line()
            if line is None:
                return False
            if line == b"":
                self._end_message(_fields(self._trailer_lines))
            else:
                self._trailer_lines.append(line)
            return True
        return False
