"""The structure is a contract (issue 10): layers point one way, modules and functions stay small,
ports are typed. These tests read the source; they fail when a change breaks the shape."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["domain", "activities", "workflows", "workers", "incidentflow"]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _sources() -> list[Path]:
    return sorted(p for layer in LAYERS for p in (ROOT / layer).rglob("*.py"))


def test_every_layer_is_a_package_in_the_distribution_and_the_image() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    for layer in LAYERS:
        assert (ROOT / layer / "__init__.py").exists(), layer
        assert f'"{layer}*"' in pyproject, f"{layer} is not packaged"
        assert f"COPY {layer} ./{layer}" in dockerfile, f"the Dockerfile does not copy {layer}/"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines (max {MAX_MODULE_LINES})"
    too_long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
                for node in ast.walk(ast.parse(text))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]  # type: ignore[operator]
    assert not too_long, f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_domain_imports_nothing_of_ours_but_domain() -> None:
    offenders = []
    for path in (ROOT / "domain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in LAYERS[1:]]
    assert not offenders


def test_ports_have_no_any() -> None:
    tree = ast.parse((ROOT / "activities" / "ports.py").read_text())
    uses = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "Any"]
    assert not uses, f"activities/ports.py uses Any on lines {uses}"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("layers")
    for layer in LAYERS:
        shutil.copytree(ROOT / layer, tree / layer, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_layers_contract_holds(tree_copy: Path) -> None:
    result = _lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "upward"), [
    ("domain/policy.py", "import activities.errors"),
    ("activities/notify.py", "import workflows.options"),
    ("workflows/escalation.py", "import workers.main"),
    ("workers/main.py", "import incidentflow.client"),
])
def test_an_upward_import_breaks_the_build(tree_copy: Path, module: str, upward: str) -> None:
    path = tree_copy / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{upward}  # upward: must be refused\n")
        result = _lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0, f"lint-imports accepted `{upward}` in {module}"
    assert "BROKEN" in result.stdout


@pytest.mark.parametrize("line", ["now = datetime.now(UTC)", "now = time.time()", "pick = random.random()",
                                  "key = uuid.uuid4()", "home = os.environ['HOME']"])
def test_workflow_code_may_not_read_clocks_randomness_or_the_environment(tmp_path: Path, line: str) -> None:
    """The worker runs workflows without the SDK sandbox (domain/settings.py `workflow_sandbox`): ruff refuses in
    workflows/ what the sandbox would have, and nowhere else."""
    (tmp_path / "workflows").mkdir()
    (tmp_path / "activities").mkdir()
    code = f"import os\nimport random\nimport time\nimport uuid\nfrom datetime import UTC, datetime\n\n{line}\n"
    for layer in ("workflows", "activities"):
        (tmp_path / layer / "sample.py").write_text(code)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    ruff = Path(sys.executable).parent / "ruff"

    def check(layer: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ruff), "check", "--no-cache", "--select", "TID251", f"{layer}/sample.py"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    refused, allowed = check("workflows"), check("activities")
    assert refused.returncode != 0 and "TID251" in refused.stdout, refused.stdout + refused.stderr
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
