"""The package as users get it: a built wheel holds every module and data file, its console scripts run from an
installed (non-editable) copy, and the top-level packages import in one direction only."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_LEVEL = ("modeling_elegance", "processing", "training", "pipelines", "hub_cards")
# what each top-level package may import from the others: models <- processors <- training; pipelines above both
ALLOWED_IMPORTS = {
    "modeling_elegance": set(),
    "processing": {"modeling_elegance"},
    "hub_cards": set(),
    "pipelines": {"modeling_elegance", "processing"},
    "training": {"modeling_elegance", "processing", "hub_cards"},
}


def package_files() -> list[str]:
    """Every file of the top-level packages in the source tree, as paths relative to the repository root."""
    found = []
    for name in TOP_LEVEL:
        for folder, dirs, files in os.walk(os.path.join(ROOT, name)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files if not f.endswith(".pyc")]
    return sorted(path.replace(os.sep, "/") for path in found)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    """A wheel built by pip from a copy of the source tree (setup.py, README and the packages only)."""
    source = tmp_path_factory.mktemp("source")
    for path in package_files() + ["setup.py", "README.md"]:
        os.makedirs(source / os.path.dirname(path), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, path), source / path)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)], check=True)
    (wheel,) = [os.path.join(out, name) for name in os.listdir(out) if name.endswith(".whl")]
    return wheel


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> str:
    """The wheel installed, without -e, into a folder of its own (dependencies come from the test environment)."""
    target = str(tmp_path_factory.mktemp("site"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", target, wheel], check=True
    )
    return target


def run_installed(installed: str, cwd, *command: str) -> str:
    environment = {**os.environ, "PYTHONPATH": installed, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *command], cwd=cwd, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_wheel_holds_every_module_and_data_file_of_the_source_tree(wheel):
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if not name.startswith("elegance-")}
    missing = [path for path in package_files() if path not in shipped]
    assert not missing, f"the wheel lacks {missing}"
    assert "training/heads/output_guidance.py" in shipped and "hub_cards/backbone.jinja" in shipped


def test_the_console_scripts_import_from_the_installed_copy(installed, tmp_path):
    with open(
        os.path.join(installed, next(d for d in os.listdir(installed) if d.endswith(".dist-info")), "entry_points.txt")
    ) as stream:
        entry_points = [line.split("=", 1)[1].strip() for line in stream if "=" in line]
    assert len(entry_points) == 12
    modules = sorted({entry.split(":")[0] for entry in entry_points})
    script = (
        f"import importlib, json; print(json.dumps({{m: importlib.import_module(m).__file__ for m in {modules!r}}}))"
    )
    files = json.loads(run_installed(installed, tmp_path, "-c", script))
    assert all(path.startswith(installed) for path in files.values()), files


def test_an_installed_copy_trains_evaluates_and_verifies_a_release(installed, tiny_corpus_path, tmp_path):
    scripts = os.path.join(installed, "bin")
    run = str(tmp_path / "run")
    run_installed(
        installed,
        tmp_path,
        os.path.join(scripts, "elegance-train"),
        "--backbone",
        "usev-tiny",
        "--data",
        tiny_corpus_path,
        "--output_dir",
        run,
        "--max_steps",
        "1",
        "--max_train_examples",
        "4",
        "--eval_split",
        "none",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
    )
    assert os.path.isfile(os.path.join(run, "guidance-free", "model.safetensors"))
    results = str(tmp_path / "results.json")
    run_installed(
        installed,
        tmp_path,
        os.path.join(scripts, "elegance-evaluate"),
        "--model",
        os.path.join(run, "guidance-free"),
        "--data",
        tiny_corpus_path,
        "--splits",
        "test",
        "--out",
        results,
        "--max_examples",
        "2",
        "--no_perceptual",
        "--asr",
        "none",
    )
    assert json.load(open(results))["splits"]["test"]["examples"] == 2
    output = run_installed(
        installed,
        tmp_path,
        os.path.join(scripts, "elegance-push"),
        os.path.join(run, "guidance-free"),
        "org/usev-tiny",
        "--dry_run",
    )
    assert "verified release folder" in output


def imported_top_level_packages(path: str) -> set[str]:
    """Top-level packages of this repository that a source file imports (at module level or inside functions)."""
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(TOP_LEVEL)


@pytest.mark.parametrize("package", TOP_LEVEL)
def test_packages_import_in_one_direction(package):
    wrong = {}
    for path in package_files():
        if path.startswith(package + "/") and path.endswith(".py"):
            extra = imported_top_level_packages(os.path.join(ROOT, path)) - ALLOWED_IMPORTS[package] - {package}
            if extra:
                wrong[path] = sorted(extra)
    assert not wrong, f"{package} may import only {sorted(ALLOWED_IMPORTS[package])}: {wrong}"


def test_processing_takes_only_configs_from_the_models():
    for path in package_files():
        if path.startswith("processing/") and path.endswith(".py"):
            for node in ast.walk(ast.parse(open(os.path.join(ROOT, path)).read())):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level == 0
                    and (node.module or "").startswith("modeling_elegance")
                ):
                    assert node.module.startswith("modeling_elegance.configuration_"), (path, node.module)
