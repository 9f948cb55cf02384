#!/usr/bin/env python3
"""Gives the Web Workers of wasm-bindgen-rayon's pool a stack of the size given, in place.

wasm-bindgen-rayon's worker script initializes the module with the positional call
`pkg.default(module, memory)`, which cannot pass `thread_stack_size`, so each worker got
wasm-bindgen's default 2 MB stack, taken from the heap before a model loads (4 MB of the
threaded build's load peak with two workers). The call is rewritten to the object form with the
size; a script whose call differs from the one expected is an error, so a new
wasm-bindgen-rayon cannot silently go back to the default.

    python3 scripts/set-worker-stack.py pkg/wasm/threads/snippets/wasm-bindgen-rayon-*/src/workerHelpers.no-bundler.js 1048576
"""
import re
import sys

PAGE = 65536
POSITIONAL = "await pkg.default(data.module, data.memory);"


def main() -> None:
    path, size = sys.argv[1], int(sys.argv[2])
    if size <= 0 or size % PAGE:
        raise SystemExit(f"stack size {size} is not a positive multiple of {PAGE}")
    text = open(path, encoding="utf-8").read()
    done = re.search(r"thread_stack_size: (\d+)", text)
    if done:
        if int(done.group(1)) != size:
            raise SystemExit(f"{path}: already set to {done.group(1)}")
        return
    if text.count(POSITIONAL) != 1:
        raise SystemExit(f"{path}: the worker's init call `{POSITIONAL}` was not found once")
    call = f"await pkg.default({{ module_or_path: data.module, memory: data.memory, thread_stack_size: {size} }});"
    open(path, "w", encoding="utf-8").write(text.replace(POSITIONAL, call))


if __name__ == "__main__":
    main()
