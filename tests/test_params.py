"""params.yaml refused early: each section's check (vad.params, the methods' settings, fuse),
unknown keys named, cross-field constraints, and `python -m vad check-params` reporting every
error at once before DVC runs anything."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vad.cache import orphaned_partials, remove_orphaned_partials
from vad.config import ConfigError, load_params
from vad.fusion import fuse_settings
from vad.methods.plan import write_settings
from vad.methods.registry import method_names
from vad.params.check import check_params, parse_overrides, with_overrides
from vad.params.data import data_settings, frames_settings
from vad.params.dynamic_flow import dynamic_flow_settings
from vad.params.evaluate import evaluate_settings
from vad.params.flow import flow_settings

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")


def changed(**changes) -> dict:
    """The repository's params with `section={key: value}` changes (None deletes the key)."""
    params = copy.deepcopy(PARAMS)
    for section, values in changes.items():
        for key, value in values.items():
            if value is None:
                params[section].pop(key, None)
            else:
                params[section][key] = value
    return params


def vad_command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "vad", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_repository_params_pass_every_check():
    assert check_params(PARAMS) == []
    assert data_settings(PARAMS)["name"] == "synthetic"
    assert frames_settings(PARAMS) == {"color": "gray", "size": None}
    assert flow_settings(PARAMS)["method"] == "dis"
    settings, n_jobs = dynamic_flow_settings(PARAMS)
    assert settings.window == 20 and n_jobs == 2
    assert evaluate_settings(PARAMS)["protocol"] == {
        "smoothing": "none",
        "window": None,
        "sigma": None,
        "normalization": "none",
    }


def test_check_params_command_passes_the_repository_params_without_importing_torch(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    done = vad_command("check-params", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "params.yaml: OK (methods: baseline, gmfc_vae_rgb, gmfc_vae_dynflow, velocity, hf2vad, "
        "itae, dissociation)"
    )
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from vad.params.check import check_params_file; "
            "check_params_file('params.yaml'); print('torch' in sys.modules)",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "False", probe.stderr


def test_patch_32_is_refused_naming_the_key_before_any_output(tmp_path):
    params = changed(patches={"patch": 32, "size": [416, 288]})
    with pytest.raises(ConfigError, match=r"'patches\.patch' must be 28 for GMFC-VAE.*got 32"):
        write_settings(params, tmp_path / "settings")
    assert list(tmp_path.iterdir()) == []  # the settings stage wrote nothing
    assert any("'patches.patch'" in error for error in check_params(params))


def test_patch_size_must_tile_the_frame():
    errors = check_params(changed(patches={"size": [420, 290]}))
    assert errors == [
        "params.yaml: 'patches.size' [420, 290] must be a multiple of 'patches.patch' (28) in "
        "width and height: the test patches tile the frame"
    ]
    assert "'baseline.size'" in check_params(changed(baseline={"patch": 25}))[0]


def test_all_zero_fusion_weights_are_refused_naming_the_keys():
    with pytest.raises(ConfigError) as error:
        fuse_settings(changed(fuse={"alpha": 0, "beta": 0.0}), method_names())
    assert str(error.value) == (
        "params.yaml: 'fuse.alpha', 'fuse.beta': every weight of fused model gmfc_vae is 0, so "
        "its score would be constant (AUC 0.5); give at least one part a weight > 0"
    )
    models, normalize = fuse_settings(changed(fuse={"alpha": 1, "beta": 0}), method_names())
    assert models == {"gmfc_vae": {"gmfc_vae_rgb": 1.0, "gmfc_vae_dynflow": 0.0}}


@pytest.mark.parametrize(
    ("fuse", "message"),
    [
        ({"beta": -0.5}, r"'fuse\.beta' must be a finite number >= 0"),
        ({"alpha": "half"}, r"'fuse\.alpha' must be a number"),
        ({"Alpha": 1.0}, r"unknown key 'fuse\.Alpha' \(did you mean 'fuse\.alpha'\?\)"),
        (
            {"models": {"gmfc_vae": {"gmfc_vae_rgb": "alpha", "gmfc_vae_dynflow": "gamma"}}},
            r"missing key 'fuse\.gamma'",
        ),
        ({"models": {"m": {"baseline": -1}}}, r"'fuse\.models\.m\.baseline' must be"),
    ],
)
def test_fusion_weights_are_checked(fuse, message):
    with pytest.raises(ConfigError, match=message):
        fuse_settings(changed(fuse=fuse), method_names())


def test_an_even_median_window_is_refused_naming_the_key():
    params = changed(evaluate={"smoothing": "median", "window": 8})
    with pytest.raises(ConfigError, match=r"'evaluate\.window' must be odd .*got 8"):
        evaluate_settings(params)
    # checked whatever the smoothing, so that switching to median cannot fail later
    with pytest.raises(ConfigError, match=r"'evaluate\.window'"):
        evaluate_settings(changed(evaluate={"window": 0}))
    with pytest.raises(ConfigError, match=r"'evaluate\.sigma' must be > 0"):
        evaluate_settings(changed(evaluate={"smoothing": "gaussian", "sigma": 0}))
    assert evaluate_settings(changed(evaluate={"smoothing": "median"}))["protocol"]["window"] == 9


def test_the_evaluate_stage_refuses_an_even_window_and_leaves_the_reports(tmp_path):
    """Run as DVC runs it: the stage fails before touching its outputs (which dvc.yaml marks
    `persist`, so DVC does not delete them first either)."""
    params = changed(evaluate={"smoothing": "median", "window": 8})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    reports = tmp_path / "reports"
    (reports / "plots").mkdir(parents=True)
    (reports / "metrics.json").write_text('{"old": 1}\n')
    (reports / "plots" / "roc_baseline.json").write_text("[]\n")
    before = {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "stages.evaluate", *(f"--{a}=x" for a in ("scores", "fused")),
         "--ground-truth=gt.h5", "--frames=f.h5", f"--metrics={reports / 'metrics.json'}",
         f"--plots={reports / 'plots'}", f"--figures={reports / 'figures'}",
         f"--summary={reports / 'summary.md'}",
         f"--metrics-paper={reports / 'metrics_paper.json'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "params.yaml: 'evaluate.window' must be odd" in done.stderr
    assert {p: p.read_bytes() for p in reports.rglob("*") if p.is_file()} == before
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]
    outputs = [*stage["metrics"], *stage["outs"]]
    assert all(next(iter(out.values())).get("persist") for out in outputs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gmfc_vae": {"Kk": 3}}, r"unknown key 'gmfc_vae\.Kk' \(did you mean 'gmfc_vae\.K'\?\)"),
        ({"gmfc_vae": {"recon_variance": 0}}, r"'gmfc_vae\.recon_variance' must be > 0"),
        ({"gmfc_vae": {"lr": 0.0}}, r"'gmfc_vae\.lr' must be > 0"),
        ({"patches": {"strides": 7}}, r"unknown key 'patches\.strides'"),
        ({"baseline": {"size": None}}, r"missing key 'baseline\.size'"),
        ({"dynamic_flow": {"window": 1}}, r"'dynamic_flow\.window' must be >= 2"),
        ({"dynamic_flow": {"C": 0}}, r"'dynamic_flow\.C' must be > 0"),
        ({"dynamic_flow": {"encode_scale": 0}}, r"'dynamic_flow\.encode_scale' must be > 0"),
        ({"dynamic_flow": {"output_scale": float("nan")}}, r"'dynamic_flow\.output_scale'"),
        ({"flow": {"dis": {"preset": "slow"}}}, r"'flow\.dis': .*preset"),
        ({"flow": {"farneback": {"levels": 3, "windows": 5}}}, r"'flow\.farneback'"),
        ({"flow": {"method": "flownet2"}}, r"'flow\.flownet2\.checkpoint' .*no such file"),
        ({"flow": {"jobs": 2}}, r"unknown key 'flow\.jobs'"),
        ({"frames": {"colour": "rgb"}}, r"unknown key 'frames\.colour'"),
        ({"data": {"synthetic": {"seeds": 1}}}, r"'data\.synthetic': unknown synthetic"),
        ({"data": {"name": "ped2", "root": "/no/such/ped2"}}, r"'data\.root' /no/such/ped2: no"),
        ({"evaluate": {"normalisation": "zscore"}}, r"did you mean 'evaluate\.normalization'"),
    ],
)
def test_errors_name_the_key(changes, message):
    errors = check_params(changed(**changes))
    assert len(errors) == 1, errors
    assert errors[0].startswith("params.yaml: ")
    assert re.search(message, errors[0]), errors[0]


def test_an_unknown_section_and_methods_are_refused():
    params = copy.deepcopy(PARAMS)
    params["gmfc_vea"] = {"K": 3}
    params["methods"] = ["baseline", "nope"]
    errors = check_params(params)
    assert errors[0].startswith("params.yaml: 'methods' names unknown method(s) nope")
    assert errors[1].startswith("params.yaml: unknown section 'gmfc_vea'; known: methods, data")


def test_check_params_reports_every_error_at_once(tmp_path):
    params = changed(
        patches={"patch": 32},
        fuse={"alpha": 0, "beta": 0},
        evaluate={"smoothing": "median", "window": 8},
        gmfc_vae={"Kk": 3},
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = vad_command("check-params", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[-1] == "params.yaml: 4 errors"
    assert [line.split("'")[1] for line in lines[:-1]] == [
        "gmfc_vae.Kk",  # once each, though both GMFC-VAE streams read these sections
        "patches.patch",
        "fuse.alpha",  # 'fuse.alpha', 'fuse.beta': every weight ... is 0
        "evaluate.window",
    ]


def test_check_params_names_a_broken_file(tmp_path):
    (tmp_path / "params.yaml").write_text("data: [unclosed\n")
    done = vad_command("check-params", cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("params.yaml: ")
    done = vad_command("check-params", "--params", "other.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "parameter file not found" in done.stderr


def test_the_evaluate_choices_match_the_protocol():
    from vad.eval import postprocess
    from vad.params import evaluate

    assert evaluate.SMOOTHINGS == postprocess.SMOOTHINGS
    assert evaluate.NORMALIZATIONS == postprocess.NORMALIZATIONS
    assert evaluate.REMOVED_NORMALIZATIONS == postprocess.REMOVED_NORMALIZATIONS


ZSCORE_PAPER = {"velocity": {"smoothing": "none", "normalization": "zscore"}}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"normalization": "zscore"}, "evaluate.normalization"),
        ({"paper_protocols": ZSCORE_PAPER}, "evaluate.paper_protocols.velocity.normalization"),
    ],
)
def test_a_zscore_evaluation_is_refused_with_the_reason(changes, key):
    errors = check_params(changed(evaluate=changes))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"params.yaml: '{key}' 'zscore' was removed: "), errors[0]
    assert "leaves every ROC-based metric (frame and pixel AUC, EER) unchanged" in errors[0]


def test_check_params_refuses_a_params_file_still_saying_zscore(tmp_path):
    params = changed(evaluate={"normalization": "zscore"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = vad_command("check-params", cwd=tmp_path)
    assert done.returncode == 1
    assert "'evaluate.normalization' 'zscore' was removed" in done.stderr, done.stderr


def test_the_gmfc_vae_network_decodes_the_patch_size_the_settings_require():
    import torch

    from vad.methods.gmfc_vae.method import NETWORK_PATCH
    from vad.methods.gmfc_vae.model import GMFCVAE

    model = GMFCVAE(n_components=2, latent_dim=4)
    with torch.no_grad():
        decoded = model.decoder(torch.zeros(1, 4, 1, 1))
    assert decoded.shape[-2:] == (NETWORK_PATCH, NETWORK_PATCH)


def test_orphaned_partials_are_found_and_removed(tmp_path, capsys):
    data = tmp_path / "data" / "interim"
    data.mkdir(parents=True)
    (data / "flow.h5").write_bytes(b"restored by dvc")
    (data / "flow.h5.partial").write_bytes(b"x" * 2_000_000)  # orphaned: flow.h5 exists
    (data / "dynflow.h5.partial").write_bytes(b"resumable")  # its stage is still to run
    assert orphaned_partials(tmp_path / "data") == [data / "flow.h5.partial"]
    assert remove_orphaned_partials(tmp_path / "data") == [data / "flow.h5.partial"]
    assert capsys.readouterr().out == (
        f"removed {data / 'flow.h5.partial'} (2.0 MB): an interrupted run's resume file, "
        f"orphaned since {data / 'flow.h5'} was restored (DVC run cache)\n"
    )
    assert sorted(p.name for p in data.iterdir()) == ["dynflow.h5.partial", "flow.h5"]
    assert orphaned_partials(tmp_path / "missing") == []


def test_check_params_removes_orphaned_partials_beside_the_params_file(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "flow.h5").write_bytes(b"restored")
    (tmp_path / "data" / "flow.h5.partial").write_bytes(b"old")
    done = vad_command("check-params", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("removed data/flow.h5.partial (0.0 MB)")
    assert not (tmp_path / "data" / "flow.h5.partial").exists()


def test_the_benchmark_checks_its_overrides_before_running(tmp_path, monkeypatch):
    from vad.bench.pipeline import run_benchmark

    assert with_overrides({"a": {"b": 1}}, {"a.c": 2, "d.e": 3}) == {
        "a": {"b": 1, "c": 2},
        "d": {"e": 3},
    }
    params = changed(gmfc_vae={"Kk": 1})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "ped2").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("vad.bench.pipeline.frame_counts", lambda *args: {"train": 1, "test": 1})

    def never(*args, **kwargs):
        raise AssertionError(f"ran {args}")

    with pytest.raises(SystemExit, match=r"unknown key 'gmfc_vae\.Kk'"):
        run_benchmark("ped2", str(tmp_path / "ped2"), run_command=never)


def test_the_paper_experiments_are_checked_with_their_overrides_before_queueing():
    from vad.experiments import check_experiments, dissociation_experiments, paper_experiments

    assert parse_overrides(["fuse.alpha=0", "data.root=/x", "methods=[baseline]"]) == {
        "fuse.alpha": 0,
        "data.root": "/x",
        "methods": ["baseline"],
    }
    # Hydra's add (+) and add-or-replace (++) forms, which DVC needs for a key params.yaml lacks
    assert parse_overrides(["+flow.tvl1.epsilon=0.05", "++fuse.beta=1"]) == {
        "flow.tvl1.epsilon": 0.05,
        "fuse.beta": 1,
    }
    assert check_experiments([("tvl1", ["+flow.tvl1.epsilon=0.05"])], [], PARAMS) == []
    assert check_experiments([("bad", ["+flow.tvl1.epsilom=0.05"])], [], PARAMS) != []
    assert check_experiments(paper_experiments(), [], PARAMS) == []
    assert check_experiments(dissociation_experiments(), [], PARAMS) == []
    errors = check_experiments(
        [("appearance", ["fuse.alpha=0", "fuse.beta=0"]), ("K0", ["gmfc_vae.K=0"])],
        ["data.name=ped2", "data.root=/no/such/ped2"],
        PARAMS,
    )
    assert [error.split(": params.yaml: ")[0] for error in errors] == [
        "appearance",
        "appearance",
        "K0",
        "K0",
    ]
    assert "'fuse.alpha', 'fuse.beta'" in errors[1] and "'gmfc_vae.K' must be >= 1" in errors[3]


def test_the_settings_stage_checks_all_of_params_before_writing(tmp_path):
    """`settings` runs first in `dvc repro`: a bad value in any section stops the run there."""
    params = changed(dynamic_flow={"window": 1}, evaluate={"smoothing": "median", "window": 8})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-m", "stages.settings", "--out", "data/settings"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert [line.split("'")[1] for line in done.stderr.splitlines()] == [
        "dynamic_flow.window",
        "evaluate.window",
    ]
    assert not (tmp_path / "data").exists()
