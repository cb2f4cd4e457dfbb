"""Glow on latent feature maps (vad/methods/itae/glow.py): invertibility, log-determinants
against brute-force Jacobians, the exact likelihood of an identity flow, actnorm's data-dependent
initialisation, training, input checks and determinism."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from vad.methods.itae.glow import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    ActNorm,
    AffineCoupling,
    FlowStep,
    Glow,
    InvertibleConv1x1,
    gaussian_log_density,
    squeeze,
    unsqueeze,
)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """These tensors are tiny: one thread is faster than several on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_batch(shape: tuple[int, ...], seed: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@torch.no_grad()
def perturb(module: nn.Module, seed: int, std: float = 0.1) -> nn.Module:
    """Add N(0, std^2) noise to every parameter, so that zero-initialised layers do something."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
        parameter.add_(std * noise.to(parameter.dtype))
    return module


def initialised(glow: Glow, batch: torch.Tensor) -> Glow:
    """Run one training-mode batch (actnorm's data-dependent init), then switch to eval."""
    glow.train()
    with torch.no_grad():
        glow(batch)
    return glow.eval()


@torch.no_grad()
def make_identity(glow: Glow) -> Glow:
    """Every layer exactly the identity: actnorm marked initialised with s = 1 and b = 0 (its
    construction values), 1x1 convolutions with P = L = U = I; couplings with scale "exp" and
    priors are zero-initialised already."""
    for module in glow.modules():
        if isinstance(module, ActNorm):
            module.initialized.fill_(True)
        elif isinstance(module, InvertibleConv1x1):
            module.permutation.copy_(torch.eye(module.permutation.shape[0]))
            module.sign_s.fill_(1.0)
            module.lower.zero_()
            module.upper.zero_()
            module.log_s.zero_()
    return glow


def brute_force_log_det(function, x: torch.Tensor) -> torch.Tensor:
    """log|det J| of `function` (one sample (C, H, W) -> any shape), per sample of x."""
    values = []
    for sample in x:
        jacobian = torch.autograd.functional.jacobian(
            lambda v: function(v.unsqueeze(0)).flatten(), sample, vectorize=True
        )
        values.append(torch.linalg.slogdet(jacobian.reshape(sample.numel(), -1)).logabsdet)
    return torch.stack(values)


# ---- squeeze --------------------------------------------------------------------------------


def test_squeeze_moves_each_2x2_block_into_channels_and_unsqueeze_undoes_it():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    squeezed = squeeze(x)
    assert squeezed.shape == (2, 12, 2, 3)
    # channel 4c + 2i + j at (u, v) holds x[c, 2u + i, 2v + j]
    assert squeezed[1, 4 * 2 + 2 * 1 + 0, 1, 2] == x[1, 2, 3, 4]
    assert torch.equal(unsqueeze(squeezed), x)


def test_squeeze_of_odd_size_raises_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(1, 2, 5, 4\)"):
        squeeze(torch.zeros(1, 2, 5, 4))


@pytest.mark.parametrize("shape, levels", [((1, 4, 5, 8), 1), ((2, 3, 8, 6), 2)])
def test_glow_rejects_sizes_not_divisible_by_two_to_the_levels(shape, levels):
    glow = Glow(shape[1], steps=1, levels=levels, hidden=8)
    with pytest.raises(ValueError, match=rf"L={levels}.*{re.escape(str(shape))}"):
        glow.log_prob(torch.zeros(shape))


# ---- invertibility --------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 5])
@pytest.mark.parametrize("scale", ["sigmoid", "exp"])
def test_coupling_with_odd_channels_is_inverted(channels, scale):
    generator = torch.Generator().manual_seed(0)
    coupling = perturb(AffineCoupling(channels, 16, generator, scale), seed=1)
    x = gaussian_batch((2, channels, 6, 6), seed=2)
    y, _ = coupling(x)
    assert not torch.allclose(y[:, channels // 2 :], x[:, channels // 2 :], atol=1e-2)
    torch.testing.assert_close(y[:, : channels // 2], x[:, : channels // 2], rtol=0, atol=0)
    torch.testing.assert_close(coupling.inverse(y), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize(
    "dtype, noise, tolerance", [(torch.float32, 0.02, 1e-5), (torch.float64, 0.1, 1e-10)]
)
def test_glow_is_inverted(levels, channels, dtype, noise, tolerance):
    x = gaussian_batch((3, channels, 8, 8), seed=3, dtype=dtype) * 2.0 + 1.0
    glow = Glow(channels, steps=3, levels=levels, hidden=16).to(dtype)
    glow = initialised(perturb(glow, seed=4, std=noise), x)
    latents, _ = glow(x)
    assert len(latents) == levels
    assert sum(z[0].numel() for z in latents) == x[0].numel()
    torch.testing.assert_close(glow.inverse(latents), x, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("scale, factor", [("exp", 1.0), ("sigmoid", 1.0 / (1.0 + math.exp(-2.0)))])
def test_fresh_coupling_scales_the_second_half_by_its_initial_factor(scale, factor):
    coupling = AffineCoupling(5, 8, torch.Generator().manual_seed(0), scale)
    x = gaussian_batch((2, 5, 4, 4), seed=26)
    y, log_det = coupling(x)
    torch.testing.assert_close(y, torch.cat([x[:, :2], factor * x[:, 2:]], dim=1))
    torch.testing.assert_close(log_det, torch.full((2,), 3 * 16 * math.log(factor)))


# ---- log-determinants against brute-force Jacobians (float64) --------------------------------


def test_actnorm_log_det_matches_jacobian():
    x = gaussian_batch((2, 4, 4, 4), seed=5, dtype=torch.float64) * 3.0 - 1.0
    actnorm = ActNorm(4).double()
    actnorm(x)  # data-dependent init: non-trivial scales
    actnorm.eval()
    _, log_det = actnorm(x)
    torch.testing.assert_close(log_det, brute_force_log_det(lambda v: actnorm(v)[0], x))


def test_invertible_conv_log_det_matches_jacobian():
    generator = torch.Generator().manual_seed(6)
    conv = perturb(InvertibleConv1x1(4, generator).double(), seed=7, std=0.3)
    x = gaussian_batch((2, 4, 4, 4), seed=8, dtype=torch.float64)
    _, log_det = conv(x)
    assert log_det.abs().min() > 0.1  # the orthogonal start (log|det| = 0) was perturbed
    torch.testing.assert_close(log_det, brute_force_log_det(lambda v: conv(v)[0], x))


@pytest.mark.parametrize("scale", ["sigmoid", "exp"])
def test_coupling_log_det_matches_jacobian(scale):
    generator = torch.Generator().manual_seed(9)
    coupling = perturb(AffineCoupling(4, 8, generator, scale).double(), seed=10, std=0.3)
    x = gaussian_batch((2, 4, 4, 4), seed=11, dtype=torch.float64)
    _, log_det = coupling(x)
    torch.testing.assert_close(log_det, brute_force_log_det(lambda v: coupling(v)[0], x))


def test_flow_step_log_det_matches_jacobian():
    generator = torch.Generator().manual_seed(12)
    step = FlowStep(4, 8, generator).double()
    x = gaussian_batch((2, 4, 4, 4), seed=13, dtype=torch.float64)
    step(x)
    perturb(step.eval(), seed=14, std=0.2)
    _, log_det = step(x)
    torch.testing.assert_close(log_det, brute_force_log_det(lambda v: step(v)[0], x))


@pytest.mark.parametrize("levels", [1, 2])
def test_glow_log_det_matches_jacobian_of_the_concatenated_latents(levels):
    x = gaussian_batch((34, 4, 4, 4), seed=15, dtype=torch.float64) * 2.0 + 0.5
    x, first_batch = x[:2], x[2:]
    glow = initialised(Glow(4, steps=2, levels=levels, hidden=8).double(), first_batch)
    perturb(glow, seed=16, std=0.2)

    def latents(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.flatten(1) for z in glow(v)[0]], dim=1)

    _, log_det = glow(x)
    torch.testing.assert_close(log_det, brute_force_log_det(latents, x))


# ---- likelihood -----------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [1, 2])
def test_identity_glow_gives_the_standard_normal_nll(levels):
    glow = make_identity(Glow(3, steps=2, levels=levels, hidden=8, coupling_scale="exp"))
    glow = glow.double().eval()
    x = gaussian_batch((4, 3, 8, 8), seed=17, dtype=torch.float64)
    dimensions = x[0].numel()
    expected = 0.5 * x.pow(2).flatten(1).sum(1) + 0.5 * dimensions * math.log(2.0 * math.pi)
    torch.testing.assert_close(glow.nll(x), expected, rtol=1e-12, atol=1e-9)
    _, log_det = glow(x)
    assert torch.equal(log_det, torch.zeros(4, dtype=torch.float64))


def test_identity_glow_with_learned_priors_gives_their_gaussian_log_density():
    glow = make_identity(Glow(2, steps=1, levels=2, hidden=8, coupling_scale="exp"))
    glow = glow.double().eval()
    perturb(glow.split_priors, seed=29, std=0.05)
    with torch.no_grad():
        glow.top_mean.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(30))
        glow.top_log_std.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(31))
    x = gaussian_batch((3, 2, 8, 8), seed=32, dtype=torch.float64)
    kept, split_off = squeeze(x).chunk(2, dim=1)
    mean, log_std = glow.split_priors[0](kept).chunk(2, dim=1)
    assert 0.1 < log_std.abs().max() < 10.0  # varied, and inside the clamp
    split_prior = Normal(mean, log_std.exp())
    top_prior = Normal(glow.top_mean, glow.top_log_std.exp())
    expected = split_prior.log_prob(split_off).flatten(1).sum(1) + top_prior.log_prob(
        squeeze(kept)
    ).flatten(1).sum(1)
    torch.testing.assert_close(glow.log_prob(x), expected)


def test_prior_log_std_is_clamped_to_plus_minus_ten():
    z = gaussian_batch((2, 3, 2, 2), seed=33, dtype=torch.float64)
    mean = torch.zeros_like(z)
    for log_std, clamped in [(50.0, LOG_STD_MAX), (-50.0, LOG_STD_MIN)]:
        expected = Normal(mean, math.exp(clamped)).log_prob(z).flatten(1).sum(1)
        density = gaussian_log_density(z, mean, torch.full_like(z, log_std))
        torch.testing.assert_close(density, expected)
    assert (LOG_STD_MIN, LOG_STD_MAX) == (-10.0, 10.0)


def test_adam_steps_close_over_half_the_nll_gap_on_a_correlated_shifted_gaussian():
    generator = torch.Generator().manual_seed(21)
    mixing = torch.randn(4, 4, generator=generator) + 2.0 * torch.eye(4)
    offset = torch.randn(1, 4, 1, 1, generator=generator) * 3.0

    def data(count: int) -> torch.Tensor:
        noise = torch.randn(count, 4, 4, 4, generator=generator)
        return torch.einsum("ij,bjhw->bihw", mixing, noise) + offset

    held_out = data(64)
    glow = initialised(Glow(4, steps=2, levels=1, hidden=16), data(64))
    with torch.no_grad():
        before = glow.nll(held_out).mean().item()
    optimiser = torch.optim.Adam(glow.parameters(), lr=1e-2)
    glow.train()
    for _ in range(40):
        loss = glow.nll(data(32)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    glow.eval()
    with torch.no_grad():
        after = glow.nll(held_out).mean().item()
    # the data's differential entropy, the expected NLL of the true density: 16 pixels of a
    # 4-dimensional Gaussian with covariance A A^T
    entropy = 16 * (2.0 * math.log(2.0 * math.pi * math.e) + torch.slogdet(mixing).logabsdet.item())
    assert after < entropy + 0.5 * (before - entropy), (before, after, entropy)


# ---- actnorm --------------------------------------------------------------------------------


def test_actnorm_initialises_from_the_first_training_batch_only():
    x = gaussian_batch((8, 3, 5, 5), seed=22) * torch.tensor([0.5, 2.0, 7.0]).view(1, 3, 1, 1)
    x = x + torch.tensor([-3.0, 0.0, 10.0]).view(1, 3, 1, 1)
    actnorm = ActNorm(3)
    y, log_det = actnorm(x)
    assert bool(actnorm.initialized)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(
        y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), rtol=0, atol=1e-4
    )
    expected_log_det = -25 * torch.log(x.std(dim=(0, 2, 3), unbiased=False)).sum()
    torch.testing.assert_close(log_det, expected_log_det.expand(8), rtol=1e-5, atol=1e-4)

    other = gaussian_batch((8, 3, 5, 5), seed=23)
    second, _ = actnorm(other)
    loaded = ActNorm(3)
    loaded.load_state_dict(actnorm.state_dict())
    loaded.train()
    torch.testing.assert_close(loaded(other)[0], second, rtol=0, atol=0)
    first_mean = x.mean(dim=(0, 2, 3), keepdim=True)
    first_std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    torch.testing.assert_close(second, (other - first_mean) / first_std, rtol=1e-5, atol=1e-5)


def test_uninitialised_actnorm_in_eval_mode_is_the_identity():
    actnorm = ActNorm(2).eval()
    x = gaussian_batch((2, 2, 3, 3), seed=24) + 5.0
    y, log_det = actnorm(x)
    assert torch.equal(y, x) and torch.equal(log_det, torch.zeros(2))
    assert not bool(actnorm.initialized)


# ---- determinism ----------------------------------------------------------------------------


def test_same_seed_gives_identical_glows_and_another_seed_does_not():
    def state(seed: int) -> dict[str, torch.Tensor]:
        return Glow(4, steps=2, levels=2, hidden=8, seed=seed).state_dict()

    first, second, other = state(3), state(3), state(4)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not torch.equal(first["flows.0.0.invconv.lower"], other["flows.0.0.invconv.lower"])

    x = gaussian_batch((2, 4, 8, 8), seed=25)
    nlls = []
    for _ in range(2):
        glow = Glow(4, steps=2, levels=2, hidden=8, seed=3)
        glow(x)  # actnorm init
        nlls.append(glow.nll(x))
    assert torch.equal(nlls[0], nlls[1])


def test_loaded_glow_is_not_reinitialised_by_its_first_training_batch():
    x = gaussian_batch((4, 2, 8, 8), seed=27) * 3.0 + 2.0
    glow = initialised(Glow(2, steps=2, levels=2, hidden=8, seed=5), x)
    loaded = Glow(2, steps=2, levels=2, hidden=8, seed=6)
    loaded.load_state_dict(glow.state_dict())
    other = gaussian_batch((4, 2, 8, 8), seed=28)
    loaded.train()
    torch.testing.assert_close(loaded.nll(other), glow.nll(other), rtol=0, atol=0)
