"""Is a DuckDB file whole? Checked before DuckDB opens it, so a damaged file is refused untouched.

Why this exists: DuckDB checks a block's checksum only when it reads that block, and it reads lazily. A file
truncated to half opens, serves the rows whose blocks survive and lets a write start before an insert fails
with an IO error; random bytes in a block nobody reads go unnoticed. DuckDB has no statement that reads every
block, so the store reads them itself (hand-written for that reason):

    main header     4 KiB at 0: checksum, then b"DUCK" at byte 8
    database header 4 KiB at 4096 and at 8192 (the one with the higher `iteration` is current):
                    checksum, iteration, meta block, free list, block_count, block_alloc_size, ...
    blocks          block_count blocks of block_alloc_size bytes from 12288, each starting with a checksum

Each checksum is DuckDB's own (src/common/checksum.cpp): 5381 XOR the product of every little-endian 64-bit
word after it with 0xbf58476d1ce4e5b9 (mod 2**64), vectorised here with numpy. A header's block_count may
exceed the blocks on disk: after writing a header DuckDB cuts free blocks off the end of the file. So blocks
that are missing or fail their checksum count as damage only when they are not on the header's free list
(read from DuckDB's metadata: 64 sub-blocks per metadata block, each starting with the pointer to the next;
the list is a count followed by block ids). tests/store/test_integrity.py checks all of this against files
DuckDB wrote (every block of a fresh file verifies; the parsed free list is DuckDB's own count; one flipped bit
or a cut fails).

`verify(path)` reads every block (about 10 ms per 10 MB; done once per process, at open); `check_headers(path)`
reads the three headers and checks the length (done before every connection). Both return None for a whole
file and a short description of the damage otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEADER_SIZE = 4096
FIRST_BLOCK = 3 * HEADER_SIZE
_MULT = np.uint64(0xBF58476D1CE4E5B9)
_SEED = np.uint64(5381)
_BLOCKS_PER_READ = 64  # 16 MiB at DuckDB's default 256 KiB blocks
_METADATA_SUBBLOCKS = 64  # DuckDB's METADATA_BLOCK_COUNT
_INVALID = 2**64 - 1


def checksums(words: np.ndarray) -> np.ndarray:
    """DuckDB's checksum of each row of a [n, m] uint64 array (the words after each stored checksum)."""
    with np.errstate(over="ignore"):
        return np.bitwise_xor.reduce(words * _MULT, axis=1) ^ _SEED


def _stored_and_computed(buf: bytes) -> tuple[int, int]:
    words = np.frombuffer(buf, dtype="<u8")
    return int(words[0]), int(checksums(words[1:].reshape(1, -1))[0])


def _u64(buf: bytes, offset: int) -> int:
    return int.from_bytes(buf[offset:offset + 8], "little")


def _header(path: Path) -> tuple[str | None, dict]:
    """(damage or None, layout) from the three headers; reads 12 KiB."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(FIRST_BLOCK)
    if len(head) < FIRST_BLOCK:
        return f"it is only {size} bytes long, shorter than DuckDB's headers", {}
    names = ("main header", "first database header", "second database header")
    for i, name in enumerate(names):
        stored, computed = _stored_and_computed(head[i * HEADER_SIZE:(i + 1) * HEADER_SIZE])
        if stored != computed:
            return f"its {name} fails DuckDB's checksum", {}
    current = max((HEADER_SIZE, 2 * HEADER_SIZE), key=lambda off: _u64(head, off + 8))
    block_count, block_size = _u64(head, current + 32), _u64(head, current + 40)
    if block_size < HEADER_SIZE or block_size % 8 or block_count > 2**40:
        return f"its header names an impossible layout ({block_count} blocks of {block_size} bytes)", {}
    on_disk = max(0, size - FIRST_BLOCK) // block_size
    return None, {"block_count": block_count, "block_size": block_size, "size": size,
                  "on_disk": min(on_disk, block_count), "free_list": _u64(head, current + 24)}


class _Unreadable(Exception):
    pass


def free_blocks(path: Path, layout: dict) -> set[int]:
    """The block ids on the current header's free list (raises _Unreadable when the list cannot be read)."""
    bs, on_disk = layout["block_size"], layout["on_disk"]
    sub = ((bs - 8) // _METADATA_SUBBLOCKS) // 8 * 8
    ptr = layout["free_list"]
    if ptr == _INVALID:
        return set()
    with open(path, "rb") as f:
        state = {"ptr": ptr, "left": 0, "hops": 0}

        def read(n: int) -> bytes:
            out = b""
            while len(out) < n:
                if state["left"] == 0:
                    if state["ptr"] == _INVALID or state["hops"] > 4 * _METADATA_SUBBLOCKS * (on_disk + 1):
                        raise _Unreadable
                    block, index = state["ptr"] & (2**56 - 1), state["ptr"] >> 56
                    if block >= on_disk or index >= _METADATA_SUBBLOCKS:
                        raise _Unreadable
                    f.seek(FIRST_BLOCK + block * bs + 8 + index * sub)
                    state["ptr"] = int.from_bytes(f.read(8), "little")
                    state["left"], state["hops"] = sub - 8, state["hops"] + 1
                piece = f.read(min(n - len(out), state["left"]))
                if not piece:
                    raise _Unreadable
                out += piece
                state["left"] -= len(piece)
            return out

        count = int.from_bytes(read(8), "little")
        if count > layout["block_count"]:
            raise _Unreadable
        return {int.from_bytes(read(8), "little", signed=True) for _ in range(count)}


def _judge(path: Path, layout: dict, bad: list[int]) -> str | None:
    """Missing (cut off) or bad blocks are damage unless DuckDB had freed them."""
    n, on_disk = layout["block_count"], layout["on_disk"]
    if not bad and on_disk == n:
        return None
    try:
        free = free_blocks(path, layout)
    except (_Unreadable, OSError):
        return "its list of free blocks cannot be read"
    missing = [b for b in range(on_disk, n) if b not in free]
    if missing:
        return (f"it is {layout['size']:,} bytes long but its blocks {missing[0]} to {n - 1} are in use: "
                "the file was cut short")
    bad = [b for b in bad if b not in free]
    if bad:
        first = ", ".join(str(b) for b in bad[:5]) + (" ..." if len(bad) > 5 else "")
        return f"{len(bad)} of its {n} blocks fail DuckDB's checksum (block {first})"
    return None


def check_headers(path: Path) -> str | None:
    """None when the headers verify and no block in use is missing from the end of the file."""
    damage, layout = _header(path)
    return damage or _judge(path, layout, [])


def verify(path: Path) -> str | None:
    """None when the headers and every block in use pass DuckDB's checksums, else what is wrong (a clause)."""
    damage, layout = _header(path)
    if damage:
        return damage
    n, bs = layout["on_disk"], layout["block_size"]
    bad: list[int] = []
    with open(path, "rb") as f:
        f.seek(FIRST_BLOCK)
        done = 0
        while done < n:
            take = min(_BLOCKS_PER_READ, n - done)
            buf = f.read(take * bs)
            if len(buf) < take * bs:
                return "it ended while its blocks were read: the file was cut short"
            words = np.frombuffer(buf, dtype="<u8").reshape(take, bs // 8)
            wrong = np.nonzero(checksums(words[:, 1:]) != words[:, 0])[0]
            bad += [done + int(i) for i in wrong]
            done += take
    return _judge(path, layout, bad)
