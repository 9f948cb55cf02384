#!/usr/bin/env python3
"""Removes the `name` custom section (function names for stack traces and profilers) from each
wasm module given, in place. rustc keeps it and wasm-opt is off (crate/Cargo.toml), and it was
2.2 MB of the 5.9 MB threaded module. Other sections are copied byte for byte.

    python3 scripts/strip-wasm-names.py pkg/wasm/*/pocketlm_bg.wasm
"""
import sys


def leb128(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = b[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def strip_names(b: bytes) -> bytes:
    if b[:4] != b"\0asm":
        raise SystemExit("not a wasm module")
    out, i = bytearray(b[:8]), 8
    while i < len(b):
        start = i
        section_id = b[i]
        size, body = leb128(b, i + 1)
        end = body + size
        if end > len(b):
            raise SystemExit(f"section at byte {start} runs past the end of the module")
        name = b""
        if section_id == 0:
            n, j = leb128(b, body)
            name = b[j:j + n]
        if name != b"name":
            out += b[start:end]
        i = end
    return bytes(out)


for path in sys.argv[1:]:
    with open(path, "rb") as f:
        before = f.read()
    after = strip_names(before)
    with open(path, "wb") as f:
        f.write(after)
    print(f"{path}: {len(before)} -> {len(after)} bytes (name section removed)")
