#!/usr/bin/env python3
"""Every code name and file path that README.md and docs/**/*.md name in
backticks exists in the tree, so that a rename that strands a doc fails CI.

What is checked, in backticks:
- a path (it starts with a top folder of the repository, such as
  `crates/…`, `scripts/…`, `docs/…`, `configs/…`, `tests/…`, `deploy/…`, or
  it ends in `.rs`, `.sh`, `.py`): the file or folder exists (a file name
  such as `keytable.rs`, or one under a crate's folder such as
  `commands/web.rs`, is looked up anywhere in the tree);
- a Rust path (`retl_state::Fenced`, `State::fenced`, `Kind::identity()`):
  each of its names after the first is defined in the Rust sources (as a fn,
  struct, enum, trait, type, const, static, mod, macro, enum variant or
  field), and a first name that is a crate (`retl_…`) is one of the
  workspace's.

Everything else in backticks (commands, flags, YAML keys, SQL, values) is
left to the tests that run the README's examples. Prints every stranded
name with its file and line; exits 1 if there is one.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("crates/", "scripts/", "docs/", "configs/", "tests/", "deploy/", ".ci/")
SOURCE_EXTENSIONS = (".rs", ".sh", ".py")


def rust_names() -> set:
    """Every name the Rust sources define."""
    names = set()
    pattern = re.compile(
        r"\b(?:fn|struct|enum|trait|type|const|static|mod|macro_rules!)\s+([A-Za-z_][A-Za-z0-9_]*)"
    )
    variant = re.compile(r"^\s*([A-Z][A-Za-z0-9_]*)\s*(?:[({,]|=\s*\"|$)", re.M)
    field = re.compile(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?([a-z_][a-z0-9_]*)\s*:", re.M)
    for file in ROOT.glob("crates/**/*.rs"):
        text = file.read_text(errors="replace")
        names.update(pattern.findall(text))
        names.update(variant.findall(text))
        names.update(field.findall(text))
        names.add(file.stem)
    for crate in (ROOT / "crates").iterdir():
        names.add("retl_" + crate.name.replace("-", "_"))
    names.update(["retl", "crate", "self", "super", "std", "tokio", "sqlx", "serde"])
    return names


def crate_names() -> set:
    found = set()
    for toml in ROOT.glob("crates/*/Cargo.toml"):
        m = re.search(r'^name\s*=\s*"([^"]+)"', toml.read_text(), re.M)
        if m:
            found.add(m.group(1).replace("-", "_"))
    return found


def is_path(token: str) -> bool:
    if any(c in token for c in " *{$<>"):
        return False
    if token.startswith(TOP):
        return True
    # A file of the project's own code, bare or under a folder of its crate
    # (`keytable.rs`, `commands/web.rs`; a user's `alerts.yaml` or an
    # editor's `settings.json` is not the tree's).
    return token.endswith(SOURCE_EXTENSIONS) and "::" not in token


def path_exists(token: str) -> bool:
    token = token.rstrip("/").split(":")[0]
    if (ROOT / token).exists():
        return True
    if not token.startswith(TOP):
        return any(ROOT.glob(f"crates/**/{token}")) or any(ROOT.glob(f"**/{token}"))
    return False


# Paths into other crates than the workspace's: not this tree's to check.
EXTERNAL = {"std", "core", "sqlx", "tokio", "serde", "serde_json", "arrow", "arrow_array",
            "arrow_schema", "adbc_core", "adbc_driver_manager", "axum", "hyper", "reqwest",
            "rustls", "lettre", "clap", "chrono", "saphyr", "boon", "maud", "futures"}

RUST_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+(?:\(\))?$")


def main() -> int:
    names = rust_names()
    crates = crate_names()
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("**/*.md"))
    stranded = []
    for doc in files:
        if not doc.exists():
            continue
        in_fence = False
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            for token in re.findall(r"`([^`\n]+)`", line):
                token = token.strip()
                where = f"{doc.relative_to(ROOT)}:{number}"
                if is_path(token):
                    if not path_exists(token):
                        stranded.append(f"{where}: no file `{token}`")
                    continue
                if RUST_PATH.match(token):
                    parts = token.removesuffix("()").split("::")
                    if parts[0] in EXTERNAL:
                        continue
                    if parts[0].startswith("retl_") and parts[0] not in crates:
                        stranded.append(f"{where}: no crate `{parts[0]}` (in `{token}`)")
                        continue
                    for part in parts[1:]:
                        if part not in names:
                            stranded.append(f"{where}: no `{part}` in the sources (in `{token}`)")
                            break
    for line in stranded:
        print(line)
    if stranded:
        print(f"{len(stranded)} stranded name(s) in the docs")
        return 1
    print(f"docs: every backticked path and Rust name of {len(files)} file(s) exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
