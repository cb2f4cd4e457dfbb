"""The DVC graph is complete and exact: every stage depends on every vad/ module its script
imports (transitively, lazy imports included) and on no vad/ module it does not import, and
every method's code and caches reach its stages through the settings and inputs files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vad.config import load_params
from vad.imports import module_file, script_closure
from vad.methods.plan import settings_files
from vad.methods.registry import REGISTRY, get_method

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
METHOD_STAGES = ("prepare", "train", "score")
WHOLE_PACKAGE = {"settings"}  # fingerprints every method's code, so it depends on all of vad/


def definition(name: str) -> dict:
    stage = STAGES[name]
    return stage.get("do", stage)


def script_of(name: str) -> Path:
    match = re.search(r"python -m stages\.(\w+)", definition(name)["cmd"])
    assert match, f"stage {name}: no `python -m stages.<script>` in its cmd"
    return REPO / "stages" / f"{match.group(1)}.py"


def code_deps(name: str) -> list[str]:
    return [dep for dep in definition(name)["deps"] if dep.split("/")[0] in ("vad", "stages")]


def covers(deps: list[str], path: str) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def imported_files(name: str) -> set[str]:
    modules = script_closure(script_of(name))
    return {str(module_file(module).relative_to(REPO)) for module in modules}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_module_is_a_dependency(name):
    deps = code_deps(name)
    assert str(script_of(name).relative_to(REPO)) in deps
    missing = sorted(path for path in imported_files(name) if not covers(deps, path))
    assert not missing, f"stage {name} imports {missing} but dvc.yaml does not list them"


@pytest.mark.parametrize("name", sorted(set(STAGES) - WHOLE_PACKAGE))
def test_no_dependency_on_a_module_the_stage_does_not_import(name):
    """A listed file or folder must hold only modules the script imports, so that editing, say,
    a benchmark re-runs no stage."""
    imported = imported_files(name)
    for dep in code_deps(name):
        if dep.startswith("stages/"):
            continue
        files = (
            [dep]
            if dep.endswith(".py")
            else [str(p.relative_to(REPO)) for p in (REPO / dep).rglob("*.py")]
        )
        unused = sorted(set(files) - imported)
        assert not unused, f"stage {name} lists {dep} but never imports {unused}"


def test_the_settings_stage_depends_on_all_code_and_params():
    assert "vad" in definition("settings")["deps"]
    assert definition("settings")["params"] == [{"params.yaml": None}]


def test_method_stages_run_for_each_enabled_method_and_read_their_plan_files():
    for kind in METHOD_STAGES:
        stage = STAGES[kind]
        assert stage["foreach"] == "${methods}"
        deps = stage["do"]["deps"]
        assert f"data/settings/${{item}}/{kind}.json" in deps
        if kind != "train":  # prepare and score read caches; training reads prepared data only
            assert "data/inputs/${item}.json" in deps
        assert not any("interim" in dep for dep in deps)  # caches only through inputs files


def test_each_method_fingerprints_its_own_code_and_no_other_methods():
    params = load_params(REPO / "params.yaml")
    for name in REGISTRY:
        method = get_method(name)
        code = settings_files(method, params)["train"]["code"]
        own = REPO.joinpath(*method.package.split("."))
        for path in own.rglob("*.py"):
            assert str(path.relative_to(REPO)) in code, (name, path)
        others = {
            get_method(other).package.replace(".", "/")
            for other in REGISTRY
            if get_method(other).package != method.package
        }
        assert not [path for path in code if any(path.startswith(o + "/") for o in others)]
        assert "vad/methods/registry.py" not in code  # a new registry line re-runs no method


def test_every_cache_a_method_reads_is_fingerprinted_by_the_inputs_stage():
    inputs = definition("inputs")
    given = dict(re.findall(r"--cache (\w+)=(\S+)", inputs["cmd"]))
    for name in REGISTRY:
        for cache in get_method(name).inputs:
            assert cache in given, (name, cache)
            assert given[cache] in inputs["deps"]
    assert get_method("gmfc_vae_rgb").inputs == ("frames",)  # appearance: no dynamic flow
    assert "dynflow" in get_method("gmfc_vae_dynflow").inputs


def test_frames_depend_on_the_dataset_and_no_stage_on_benchmarks():
    assert "${data.root}" in definition("frames")["deps"]
    # the whole `data` section, so that a new data.scenes (any data key) re-extracts the frames
    assert "data" in definition("frames")["params"]
    for name in STAGES:
        assert not [dep for dep in definition(name)["deps"] if dep.startswith("vad/bench")]
        assert "vad.bench" not in {m.rsplit(".", 1)[0] for m in script_closure(script_of(name))}
