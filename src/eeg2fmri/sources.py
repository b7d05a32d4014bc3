"""The package source a workflow verb runs: its modules' import closure and a digest of it.

Rules pass the digest as a parameter, so that editing any file a verb imports reruns the rules
that run that verb (Snakemake's params trigger), without listing files by hand.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PKG = Path(__file__).resolve().parent

def verb_modules() -> dict[str, tuple[str, ...]]:
    """The package modules each `eeg2fmri <verb>` imports, read from cli.py: the imports inside
    its `cmd_<verb>` function and inside the cli functions that one calls."""
    tree = ast.parse((PKG / "cli.py").read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def imports(name: str, seen: set[str]) -> set[str]:
        seen.add(name)
        found = set()
        for node in ast.walk(funcs[name]):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
                    node.func.id in funcs and node.func.id not in seen):
                found |= imports(node.func.id, seen)
        return {m for m in found if m.startswith("eeg2fmri")}

    return {name.removeprefix("cmd_"): tuple(sorted(m for m in imports(name, set())
                                                    if _path(m) is not None))
            for name in funcs if name.startswith("cmd_")}


def _path(module: str) -> Path | None:
    parts = module.split(".")[1:]
    if not parts:
        return PKG / "__init__.py"
    for candidate in (PKG.joinpath(*parts[:-1], parts[-1] + ".py"),
                      PKG.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def import_closure(modules: tuple[str, ...] | list[str]) -> list[Path]:
    """The package files `modules` import, directly or not (their packages' __init__ too, and
    imports inside functions); the model registry imports architectures lazily, so all of them
    count."""
    todo, seen, files = ["eeg2fmri", "eeg2fmri.cli", *modules], set(), set()
    while todo:
        module = todo.pop()
        if module in seen or not module.startswith("eeg2fmri"):
            continue
        seen.add(module)
        path = _path(module)
        if path is None:
            continue
        files.add(path)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        if module == "eeg2fmri.models":
            todo += [f"eeg2fmri.models.{p.stem}" for p in (PKG / "models").glob("*.py")]
        tree = ast.parse(path.read_text(), str(path))
        # the CLI imports each verb's modules inside that verb: only its top level counts
        nodes = tree.body if module == "eeg2fmri.cli" else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
    return sorted(files)


def code_digest(verb: str) -> str:
    """SHA-256 (16 hex digits) of the files `eeg2fmri <verb>` runs, by relative path."""
    h = hashlib.sha256()
    for path in import_closure(VERB_MODULES[verb]):
        h.update(str(path.relative_to(PKG)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


VERB_MODULES = verb_modules()
