#!/usr/bin/env python3
"""File-level import cycles in each crate of the workspace.

A file depends on another when it names an item of the other's module
through `use crate::…`, `use super::…` (but a child naming its own parent:
that is how a module's parts share its items), `crate::a::b` paths in code,
or `mod`-relative paths of its siblings. Two files that reach each other
through such dependencies, directly or through others, form a cycle.

Prints each cycle and exits 1 if there is one; prints "no import cycle" and
exits 0 otherwise. Usage: scripts/import_cycles.py [CRATE_DIR ...]
"""

import re
import sys
from pathlib import Path


def modules(src: Path) -> dict:
    """Module path (tuple) -> file, for every .rs file under src."""
    found = {}
    for file in src.rglob("*.rs"):
        rel = file.relative_to(src)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] in ("lib", "main") and len(parts) == 1:
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        found[tuple(parts)] = file
    return found


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def test_free(text: str) -> str:
    """The text without `#[cfg(test)] mod … { … }` blocks."""
    out = []
    i = 0
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text[i:])
        if not m:
            out.append(text[i:])
            break
        start = i + m.start()
        out.append(text[i:start])
        depth = 0
        j = i + m.end() - 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1
    return "".join(out)


def use_paths(text: str) -> list:
    """Every path a file names: from `use` trees (expanded) and inline paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        paths.extend(expand(m.group(1).strip()))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        paths.append(m.group(1))
    return paths


def expand(tree: str) -> list:
    """`a::{b, c::{d}}` -> [a::b, a::c::d]."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree.split(" as ")[0]]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    items, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    if current:
        items.append(current)
    out = []
    for item in items:
        for sub in expand(item):
            out.append(head + sub if sub != "self" else head.rstrip(":"))
    return out


def resolve(path: str, here: tuple, mods: dict):
    """The module (longest known prefix) a path names, from module `here`."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = [], parts[1:]
    elif parts[0] == "super":
        base = list(here[:-1])
        rest = parts[1:]
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    elif parts[0] == "self":
        base, rest = list(here), parts[1:]
    else:
        return None
    best = tuple(base)
    for i in range(len(rest) + 1):
        cand = tuple(base + rest[:i])
        if cand in mods:
            best = cand
    return best


def cycles(crate: Path) -> list:
    src = crate / "src"
    if not src.is_dir():
        return []
    mods = modules(src)
    graph = {m: set() for m in mods}
    for here, file in mods.items():
        text = test_free(strip_comments(file.read_text()))
        for path in use_paths(text):
            target = resolve(path, here, mods)
            if target is None or target == here or target not in mods:
                continue
            # A child naming its parent's items through `super::`.
            if path.startswith("super::") and target == here[:-1]:
                continue
            # A parent naming its own child module is how a module is built.
            if target[: len(here)] == here and len(target) == len(here) + 1:
                continue
            graph[here].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(str(mods[m].relative_to(crate.parent.parent)) for m in comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    crates = [Path(a) for a in sys.argv[1:]] or sorted((root / "crates").iterdir())
    found = []
    for crate in crates:
        found.extend(cycles(crate.resolve()))
    for cycle in found:
        print("import cycle: " + " <-> ".join(cycle))
    if not found:
        print("no import cycle")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
