"""``lambdalet images [list|prune]``: the pulled images of a data directory.

Reads which digests function versions use from the store's database (read-only, so a
running server is not disturbed) and the cache from disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from lambdalet.config import ServerConfig
from lambdalet.images.service import cache_for


def used_digests(db_path: Path) -> dict[str, list[str]]:
    """digest -> the ``name:version`` of every function version using it."""
    if not db_path.exists():
        return {}
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(functions)")}
        if "image" not in cols:
            return {}
        out: dict[str, list[str]] = {}
        for name, version, image in db.execute(
            "SELECT name, version, image FROM functions WHERE image IS NOT NULL"
        ):
            out.setdefault(json.loads(image)["digest"], []).append(f"{name}:{version}")
        return out
    finally:
        db.close()


def images_command(data_dir: Path, action: str, as_json: bool) -> int:
    config = ServerConfig(data_dir=data_dir)
    cache = cache_for(config)
    used = used_digests(config.db_path)
    if action == "prune":
        removed = asyncio.run(cache.prune(lambda: used))
        if as_json:
            print(json.dumps({"removed": removed}))
        else:
            for digest in removed:
                print(f"removed {digest}")
            print(f"{len(removed)} image(s) removed")
        return 0
    images = cache.cached()
    if as_json:
        rows = [
            {"digest": i.digest, "sizeBytes": i.size_bytes, "usedBy": used.get(i.digest, [])}
            for i in images
        ]
        print(json.dumps(rows))
        return 0
    print(f"{'DIGEST':<20} {'SIZE':>10}  USED BY")
    for i in images:
        users = ", ".join(used.get(i.digest, [])) or "-"
        print(f"{i.digest[:19]:<20} {i.size_bytes / 1e6:>7.1f} MB  {users}")
    return 0
