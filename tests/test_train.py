"""GMFC-VAE training loop: learning, exact resume, settings changes, NaN and collapse handling,
model files and energies."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

import vad.methods.gmfc_vae.train as train_module
from vad.methods.gmfc_vae.model import GMFCVAE
from vad.methods.gmfc_vae.score import energies
from vad.methods.gmfc_vae.train import (
    CHECKPOINT_NAME,
    GmfcTrainSettings,
    load_model,
    load_model_extra,
    make_optimizer,
    reinitialise_collapsed_components,
    save_model,
    train_gmfc_vae,
)

torch.set_num_threads(2)


def synthetic_patches(n: int, seed: int = 0) -> np.ndarray:
    """Coloured Gaussian blobs of random position, size and colour: (n, 28, 28, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    cx, cy = rng.uniform(6, 22, (2, n, 1, 1))
    radius = rng.uniform(3, 7, (n, 1, 1))
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    colour = rng.uniform(0.3, 1.0, (n, 1, 1, 3))
    return np.round(255 * blob[..., None] * colour).astype(np.uint8)


PATCHES = synthetic_patches(64)
SMALL = dict(n_components=3, batch_size=16, lr=1e-3, gmm_fit_samples=40)


def settings(**overrides) -> GmfcTrainSettings:
    return GmfcTrainSettings(**{**SMALL, "pretrain_epochs": 1, "epochs": 2, **overrides})


def run(workdir: Path, **overrides) -> tuple[GMFCVAE, dict]:
    return train_gmfc_vae(PATCHES, settings(**overrides), workdir, device="cpu", progress=False)


def assert_same_weights(a: GMFCVAE, b: GMFCVAE) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def losses(history: dict) -> dict:
    return {phase: history[phase] for phase in ("pretrain", "vade")}


def test_training_lowers_the_loss_and_reports_history(tmp_path: Path) -> None:
    model, history = run(tmp_path, pretrain_epochs=3, epochs=4, lr=5e-4)
    pre, vade = history["pretrain"]["loss"], history["vade"]["loss"]
    assert len(pre) == 3 and len(vade) == 4
    assert pre[-1] < 0.95 * pre[0] and vade[-1] < 0.97 * vade[0]
    assert history["vade"]["kl_latent"][-1] < history["vade"]["kl_latent"][0]
    for term in ("reconstruction", "kl_latent", "kl_cluster"):
        assert len(history["vade"][term]) == 4 and np.all(np.isfinite(history["vade"][term]))
    assert history["gmm_init"]["n_samples"] == 40
    assert len(history["epoch_seconds"]["vade"]) == 4
    assert not model.training
    assert (tmp_path / CHECKPOINT_NAME).exists()


def test_resume_after_interruption_gives_identical_weights(tmp_path: Path, monkeypatch) -> None:
    reference, reference_history = run(tmp_path / "straight", pretrain_epochs=2)

    # (a) stop after VaDE epoch 1, then ask for 2 epochs on the same workdir
    run(tmp_path / "split", pretrain_epochs=2, epochs=1)
    resumed, resumed_history = run(tmp_path / "split", pretrain_epochs=2)
    assert_same_weights(reference, resumed)
    assert losses(resumed_history) == losses(reference_history)

    # (b) crash inside pre-training epoch 2, then rerun the same command
    original_run_epoch = train_module._run_epoch
    calls = {"n": 0}

    def crash_on_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return original_run_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "_run_epoch", crash_on_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crash", pretrain_epochs=2)
    checkpoint = torch.load(tmp_path / "crash" / CHECKPOINT_NAME, weights_only=True)
    assert (checkpoint["phase"], checkpoint["epoch"]) == ("pretrain", 1)
    monkeypatch.setattr(train_module, "_run_epoch", original_run_epoch)
    resumed, resumed_history = run(tmp_path / "crash", pretrain_epochs=2)
    assert_same_weights(reference, resumed)
    assert losses(resumed_history) == losses(reference_history)


def test_checkpoint_with_other_settings_starts_fresh(tmp_path: Path, caplog) -> None:
    run(tmp_path / "work", epochs=1, seed=0)
    with caplog.at_level(logging.WARNING, logger="vad.methods.gmfc_vae.train"):
        model, history = run(tmp_path / "work", epochs=1, seed=1)
    assert "starting fresh" in caplog.text
    fresh, fresh_history = run(tmp_path / "fresh", epochs=1, seed=1)
    assert_same_weights(model, fresh)
    assert len(history["vade"]["loss"]) == 1
    # different data is "other settings" too
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vad.methods.gmfc_vae.train"):
        train_gmfc_vae(PATCHES[:60], settings(epochs=1, seed=1), tmp_path / "work", "cpu", False)
    assert "starting fresh" in caplog.text


def test_non_finite_loss_stops_with_phase_epoch_and_batch(tmp_path: Path, monkeypatch) -> None:
    original_build = train_module.build_model

    def poisoned_build(*args, **kwargs):
        model = original_build(*args, **kwargs)
        with torch.no_grad():
            model.decoder.D11[0].bias.fill_(float("nan"))
        return model

    monkeypatch.setattr(train_module, "build_model", poisoned_build)
    with pytest.raises(FloatingPointError, match=r"phase 'pretrain', epoch 1/1, batch 1/4"):
        run(tmp_path / "pre")
    monkeypatch.setattr(train_module, "build_model", original_build)

    original_fit = train_module.fit_gmm_prior

    def poisoned_fit(model, *args, **kwargs):
        info = original_fit(model, *args, **kwargs)
        with torch.no_grad():
            model.mu_c.fill_(float("inf"))
        return info

    monkeypatch.setattr(train_module, "fit_gmm_prior", poisoned_fit)
    with pytest.raises(FloatingPointError, match=r"phase 'vade', epoch 1/2, batch 1/4"):
        run(tmp_path / "vade")


def test_collapsed_component_is_reinitialised_and_recorded(tmp_path: Path, monkeypatch) -> None:
    original_fit = train_module.fit_gmm_prior

    def starve_component_one(model, *args, **kwargs):
        info = original_fit(model, *args, **kwargs)
        with torch.no_grad():
            model.pi_logits[1] = -30.0
        return info

    monkeypatch.setattr(train_module, "fit_gmm_prior", starve_component_one)
    model, history = run(tmp_path, epochs=1)
    events = history["collapse_events"]
    assert len(events) == 1
    assert events[0]["component"] == 1 and events[0]["weight"] < 1e-10
    assert (events[0]["phase"], events[0]["epoch"], events[0]["batch"]) == ("vade", 1, 1)
    assert model.mixture_weights().min().item() > 0.01 / SMALL["n_components"]


def test_collapse_rule_moves_component_to_worst_explained_latent() -> None:
    torch.manual_seed(0)
    model = GMFCVAE(n_components=4, latent_dim=8)
    with torch.no_grad():
        model.pi_logits.copy_(torch.tensor([0.0, 0.5, -20.0, 1.0]))
        model.log_var_c.copy_(torch.randn(4, 8) * 0.3)
    optimizer = make_optimizer(model, settings(n_components=4), "vade")
    model.loss(torch.rand(3, 3, 28, 28))[0].backward()
    optimizer.step()
    latents = torch.randn(10, 8)
    latents[7] += 25.0  # far from every component: the worst explained
    alive_var = model.prior_log_var()[[0, 1, 3]].exp().mean(0)
    records = reinitialise_collapsed_components(model, optimizer, latents, threshold=1e-3)
    assert [r["component"] for r in records] == [2]
    assert torch.equal(model.mu_c[2], latents[7])
    torch.testing.assert_close(model.log_var_c[2].exp(), alive_var)
    weights = model.mixture_weights()
    assert weights.sum().item() == pytest.approx(1.0)
    assert weights[2].item() == pytest.approx(weights[[0, 1, 3]].mean().item(), rel=1e-5)
    assert torch.all(optimizer.state[model.mu_c]["exp_avg"][2] == 0)
    assert torch.any(optimizer.state[model.mu_c]["exp_avg"][0] != 0)
    assert reinitialise_collapsed_components(model, optimizer, latents, threshold=1e-3) == []


def test_save_load_round_trip_gives_identical_energies(tmp_path: Path) -> None:
    model, _ = run(tmp_path / "work", epochs=1)
    path = tmp_path / "models" / "gmfc_vae-rgb.pt"
    save_model(model, path, extra={"stream": "rgb", "settings": settings().to_dict()})
    loaded = load_model(path, "cpu")
    assert loaded.config == model.config and not loaded.training
    test_patches = synthetic_patches(50, seed=9)
    before = energies(model, test_patches, batch_size=16, device="cpu")
    after = energies(loaded, test_patches, batch_size=16, device="cpu")
    assert before.dtype == np.float64 and before.shape == (50,)
    assert np.array_equal(before, after)
    assert load_model_extra(path)["stream"] == "rgb"
    assert not list(path.parent.glob("*.tmp*"))
    with torch.no_grad():
        x = torch.as_tensor(test_patches[:5]).permute(0, 3, 1, 2).double() / 255
        direct = loaded.double().sample_energy(loaded.encode_mean(x)).numpy()
    np.testing.assert_allclose(before[:5], direct, rtol=1e-5)


def test_two_equal_runs_write_byte_identical_model_files(tmp_path: Path) -> None:
    """DVC hashes the model file: equal training runs must give equal bytes."""
    paths = []
    for run_name in ("first", "second"):  # different file names: not part of the bytes either
        model, _ = run(tmp_path / run_name, epochs=1)
        paths.append(tmp_path / run_name / f"{run_name}.pt")
        save_model(model, paths[-1], extra={"stream": "rgb"})
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_gmm_initialisation_matches_sklearn_on_pretrained_latents() -> None:
    model = train_module.build_model(settings(), in_channels=3)
    info = train_module.fit_gmm_prior(
        model, PATCHES, settings(gmm_fit_samples=1000), torch.device("cpu")
    )
    assert info["n_samples"] == len(PATCHES)
    x = torch.as_tensor(PATCHES).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        latents, log_var = model.encode(x)
    reference = GaussianMixture(3, covariance_type="diag", random_state=0)
    reference.fit(latents.double().numpy())
    energy = model.double().sample_energy(latents.double()).detach().numpy()
    np.testing.assert_allclose(
        energy, -reference.score_samples(latents.double().numpy()), rtol=1e-5
    )
    # q(z|x) starts with one variance, 1/100 of the mean component variance
    expected = np.log(np.mean(reference.covariances_) / 100)
    np.testing.assert_allclose(log_var.numpy(), expected, rtol=1e-5)


def test_input_validation_and_helpers() -> None:
    with pytest.raises(TypeError, match="uint8"):
        energies(GMFCVAE(2), PATCHES.astype(np.float32), device="cpu")
    with pytest.raises(ValueError, match=r"\(N, 28, 28, C\)"):
        energies(GMFCVAE(2), PATCHES[:, :20], device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        GmfcTrainSettings(batch_size=0)


def test_log_var_head_reset_keeps_the_first_vade_kl_small(tmp_path: Path) -> None:
    """Why F6 is reset before VaDE (DEVIATIONS.md): left as initialised, the first KL term is
    orders of magnitude above the reconstruction term."""
    model, _ = run(tmp_path, pretrain_epochs=2, epochs=0)  # pre-training, GMM init, F6 reset
    x = torch.from_numpy(PATCHES).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        _, reset = model.loss(x, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        model.f6_log_var.load_state_dict(GMFCVAE(n_components=3).f6_log_var.state_dict())
        _, random_head = model.loss(x, generator=torch.Generator().manual_seed(0))
    assert reset["kl_latent"] < 0.5 * reset["reconstruction"]
    assert random_head["kl_latent"] > 100 * reset["kl_latent"]
    assert random_head["kl_latent"] > 10 * random_head["reconstruction"]
