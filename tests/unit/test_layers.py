"""The layers of docs/architecture.md, held to the code: a module imports only from its own row
or the rows below (type-only imports under TYPE_CHECKING aside, which the doc names)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gitlab_xacct"
# Top to bottom, as docs/architecture.md draws them; the longest matching prefix decides.
ROWS: tuple[tuple[str, ...], ...] = (
    ("commands", "cli", "__main__"),
    ("jobs", "doctor", "bootstrap", "gitlab", "iac"),
    ("report", "log"),
    ("registry",),
    ("aws",),
    ("config",),
    ("docker_config", "token_cache"),
    ("network",),
    ("errors", "secrets", "files", "cancel"),
)


def row_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for number, row in enumerate(ROWS):
        for prefix in row:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (number, len(prefix))
    return best[0] if best else None


def _type_only(tree: ast.Module) -> set[int]:
    """Line numbers of the imports inside `if TYPE_CHECKING:` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom | ast.Import):
                    lines.add(inner.lineno)
    return lines


def imports_upward() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        own = row_of(module)
        if own is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_only(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.lineno in skip:
                continue
            if node.module == "gitlab_xacct":
                targets = [alias.name for alias in node.names]
            elif node.module and node.module.startswith("gitlab_xacct."):
                targets = [node.module.removeprefix("gitlab_xacct.")]
            else:
                continue
            for target in targets:
                row = row_of(target)
                if row is not None and row < own:
                    found.append(f"{module} (line {node.lineno}) imports {target}, a row above")
    return found


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert imports_upward() == []


def test_every_module_has_a_row() -> None:
    unplaced = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py"
        and row_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts)) is None
    ]
    assert unplaced == [], f"place these in ROWS and in docs/architecture.md: {unplaced}"
