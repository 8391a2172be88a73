#!/usr/bin/env python3
"""toml_check.py DIR: for every DIR/NAME.toml beside a DIR/NAME.json, check
that Python's tomllib reads the TOML as json reads the JSON, with null object
members dropped (TOML has no null; corral leaves such members out). Types
count: 1 and 1.0 differ, True and 1 differ, -0.0 and 0.0 differ.

Prints one line per file that differs or does not parse, then "checked N";
exits 1 when any did. test_toml runs it on every TOML it renders."""
import json
import math
import os
import sys
import tomllib


def drop_nulls(v):
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


def differ(a, b, path):
    """None when a and b are the same data, else where they part."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a.keys() ^ b.keys())!r} in one only"
        for k in a:
            d = differ(a[k], b[k], f"{path}/{k!r}")
            if d:
                return d
    elif isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} elements"
        for i, (x, y) in enumerate(zip(a, b)):
            d = differ(x, y, f"{path}[{i}]")
            if d:
                return d
    elif isinstance(a, float):
        if a != b or math.copysign(1, a) != math.copysign(1, b):
            return f"{path}: {a!r} vs {b!r}"
    elif a != b:
        return f"{path}: {a!r} vs {b!r}"
    return None


def main():
    top = sys.argv[1]
    bad = n = 0
    for name in sorted(os.listdir(top)):
        if not name.endswith(".toml"):
            continue
        n += 1
        base = os.path.join(top, name[:-5])
        try:
            with open(base + ".json", encoding="utf-8") as f:
                want = drop_nulls(json.load(f))
            with open(base + ".toml", "rb") as f:
                got = tomllib.load(f)
        except (ValueError, OSError) as e:   # tomllib.TOMLDecodeError is a ValueError
            print(f"{name}: {e}")
            bad += 1
            continue
        d = differ(want, got, "")
        if d:
            print(f"{name}: {d}")
            bad += 1
    print(f"checked {n}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
