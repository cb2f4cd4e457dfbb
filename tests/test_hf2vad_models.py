"""HF2-VAD networks and losses: ML-MemAE-SC (Sec. 3.1, App. A), the memory module, the
flow-guided CVAE (Sec. 3.2, App. A), eqs. 2, 6-8, and the per-dataset presets (Sec. 4.2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from vad.methods.hf2vad.cvae import CVAEOutput, FlowGuidedCVAE
from vad.methods.hf2vad.gaussian import LOG_VAR_MAX, gaussian, kl_divergence
from vad.methods.hf2vad.losses import (
    cvae_loss,
    gradient_loss,
    latent_kl,
    memae_loss,
    memory_entropy,
)
from vad.methods.hf2vad.memae import MLMemAESC
from vad.methods.hf2vad.memory import Memory, addressing_entropy, hard_shrink
from vad.methods.hf2vad.presets import PRESETS, get_preset

torch.set_num_threads(2)

TINY_MEMAE = dict(channels=(4, 8, 8, 16), num_slots=20, shrink_threshold=1 / 20)
TINY_CVAE = dict(channels=(8, 16, 16, 16))


def flows(batch: int, channels: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, 32, 32, generator=torch.Generator().manual_seed(seed))


def frames(batch: int, channels: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, channels, 32, 32, generator=torch.Generator().manual_seed(seed))


# ---- ML-MemAE-SC --------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, n_memories", [("ped2", 3), ("avenue", 3), ("shanghaitech", 2)])
def test_memae_presets_have_the_paper_feature_sizes_memories_and_output(dataset, n_memories):
    model = get_preset(dataset).memae.build().eval()
    sizes = []
    hooks = [
        stage.register_forward_hook(lambda _m, _i, out: sizes.append(tuple(out.shape[1:])))
        for stage in model.encoder
    ]
    cube = flows(3, 8)  # t = 4 flows of 2 channels
    with torch.no_grad():
        out = model.reconstruct_cube(cube)
    for hook in hooks:
        hook.remove()
    # App. A: (32, 32, 32), (16, 16, 64), (8, 8, 128), (4, 4, 256) as (C, H, W), each of the
    # 4 flows reconstructed on its own
    assert sizes == [(32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4)]
    assert out.reconstruction.shape == cube.shape
    assert len(out.weights) == n_memories
    for weights in out.weights:
        assert weights.shape == (4 * 3, 2000)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(12))


def test_memae_position_addressing_has_one_query_per_pixel():
    model = MLMemAESC(num_flows=2, addressing="position", similarity="cosine", **TINY_MEMAE)
    out = model(flows(2, 4))
    assert out.reconstruction.shape == (2, 4, 32, 32)
    # bottleneck (4 x 4) first, then levels 2 (8 x 8) and 1 (16 x 16)
    assert [w.shape for w in out.weights] == [(2 * 16, 20), (2 * 64, 20), (2 * 256, 20)]


@pytest.mark.parametrize("levels", [(1, 2, 3), (2, 3)])
def test_every_path_to_the_output_goes_through_a_memory(levels):
    """No skip connection at the outermost level (Fig. 3 (c)): with all memory slots zero, the
    reconstruction no longer depends on the input."""
    model = MLMemAESC(memory_levels=levels, **TINY_MEMAE).eval()
    with torch.no_grad():
        for memory in model.memories.values():
            memory.slots.zero_()
        first, second = model(flows(2, 2, seed=1)), model(flows(2, 2, seed=2))
    torch.testing.assert_close(first.reconstruction, second.reconstruction)
    assert model.fuse[0][0][0].in_channels == TINY_MEMAE["channels"][0]  # no concatenation


def test_skip_connections_come_with_the_decoder_memories():
    model = MLMemAESC(memory_levels=(2, 3), **TINY_MEMAE)
    assert model.skip_levels == (2,)
    assert model.fuse[2][0][0].in_channels == 2 * TINY_MEMAE["channels"][2]
    assert model.fuse[1][0][0].in_channels == TINY_MEMAE["channels"][1]
    with pytest.raises(ValueError, match="memory_levels"):
        MLMemAESC(memory_levels=(0, 3), **TINY_MEMAE)


def test_reconstruct_cube_reconstructs_each_flow_on_its_own():
    model = MLMemAESC(**TINY_MEMAE).eval()
    cube = flows(3, 8)
    with torch.no_grad():
        whole = model.reconstruct_cube(cube).reconstruction
        for j in range(4):
            alone = model(cube[:, 2 * j : 2 * j + 2]).reconstruction
            torch.testing.assert_close(whole[:, 2 * j : 2 * j + 2], alone)


def test_the_same_seed_gives_the_same_weights():
    a, b, c = (MLMemAESC(seed=s, **TINY_MEMAE) for s in (3, 3, 4))
    for (name, pa), pb, pc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
        if pa.dtype.is_floating_point and pa.unique().numel() > 1:
            assert not torch.equal(pa, pc), name


# ---- memory module ------------------------------------------------------------------------


def test_addressing_weights_sum_to_one_per_query():
    for similarity in ("dot", "cosine"):
        for threshold in (0.0, 1 / 50):
            memory = Memory(50, 16, threshold, similarity)
            weights = memory(torch.randn(30, 16)).weights
            assert weights.shape == (30, 50) and (weights >= 0).all()
            torch.testing.assert_close(weights.sum(dim=1), torch.ones(30))


def test_hard_shrinkage_zeroes_weights_below_the_threshold_and_renormalises():
    weights = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]])
    shrunk = hard_shrink(weights, 0.1)
    expected = torch.tensor([[0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0], [0.25] * 4])
    torch.testing.assert_close(shrunk, expected)


def test_memory_reads_the_shrunk_mixture_of_its_slots():
    """Slots log 4, log 2, 0, -10 and query 1 (dot product): softmax 4/7, 2/7, 1/7, ~0; with
    threshold 0.2 the last two go, leaving 2/3, 1/3 and the read-out (2 log 4 + log 2) / 3."""
    memory = Memory(4, 1, 0.2, "dot")
    with torch.no_grad():
        memory.slots.copy_(torch.tensor([[math.log(4)], [math.log(2)], [0.0], [-10.0]]))
    read = memory(torch.ones(1, 1))
    torch.testing.assert_close(read.weights, torch.tensor([[2 / 3, 1 / 3, 0.0, 0.0]]))
    torch.testing.assert_close(read.read, torch.tensor([[1.1552453]]))


def test_shrinkage_keeps_exactly_the_slots_above_the_threshold():
    memory = Memory(40, 8, 1 / 40, "dot")
    queries = 3 * torch.randn(25, 8, generator=torch.Generator().manual_seed(5))
    weights = memory(queries).weights
    before = torch.softmax(queries @ memory.slots.t(), dim=1)
    assert (weights[before < 1 / 40] == 0).all()
    assert (weights[before > 1 / 40] > 0).all()
    assert (weights == 0).any()


def test_entropy_loss_of_hand_made_weights():
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    # (log 2 + log 4) / 2 per eq. 2 term: mean over queries of the row entropies
    torch.testing.assert_close(addressing_entropy(half), torch.tensor(1.0397208))
    one_hot = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(addressing_entropy(one_hot), torch.tensor(0.0))
    # eq. 2 sums over memories
    torch.testing.assert_close(memory_entropy([half, one_hot, half]), torch.tensor(2.0794415))


def test_entropy_gradient_is_finite_at_zero_weights():
    weights = torch.tensor([[0.5, 0.5, 0.0, 0.0]], requires_grad=True)
    addressing_entropy(weights).backward()
    assert torch.isfinite(weights.grad).all()


def test_memae_loss_weights_reconstruction_and_entropy():
    model = MLMemAESC(**TINY_MEMAE)
    target = flows(4, 2)
    out = model(target)
    loss = memae_loss(out, target, reconstruction_weight=2.0, entropy_weight=0.5)
    torch.testing.assert_close(loss.total, 2.0 * loss.reconstruction + 0.5 * loss.entropy)
    assert loss.entropy > 0


# ---- CVAE ---------------------------------------------------------------------------------


@pytest.mark.parametrize("image_channels", [1, 3])
@pytest.mark.parametrize("learn_variance", [False, True])
def test_cvae_appendix_a_sizes_and_output_shapes(image_channels, learn_variance):
    model = FlowGuidedCVAE(image_channels=image_channels, learn_variance=learn_variance).eval()
    x, y = frames(2, 4 * image_channels), flows(2, 8)
    with torch.no_grad():
        features = model.posterior_encoder(torch.cat([x, y], dim=1))
        out = model(x, y, mode="test")
    # App. A: (32, 32, 64), (16, 16, 128), (8, 8, 128), (4, 4, 128)
    assert [tuple(last.shape[1:]) for _, last in features] == [
        (64, 32, 32),
        (128, 16, 16),
        (128, 8, 8),
        (128, 4, 4),
    ]
    assert out.prediction.shape == (2, image_channels, 32, 32)
    assert ((out.prediction > 0) & (out.prediction < 1)).all()
    for distributions in (out.posteriors, out.priors):
        assert [tuple(d.mean.shape) for d in distributions] == [(2, 128, 4, 4), (2, 128, 8, 8)]
        for d in distributions:
            assert d.log_var.shape == d.mean.shape
            assert (d.log_var == 0).all() != learn_variance


def test_test_mode_uses_the_posterior_mean_and_is_deterministic():
    model = FlowGuidedCVAE(image_channels=1, **TINY_CVAE).eval()
    x, y = frames(3, 4), flows(3, 8)
    with torch.no_grad():
        first = model(x, y, mode="test").prediction
        second = model(x, y, mode="test", generator=torch.Generator().manual_seed(9)).prediction
        sampled = model(x, y, mode="train", generator=torch.Generator().manual_seed(9))
    assert torch.equal(first, second)
    assert not torch.allclose(first, sampled.prediction)


def test_training_mode_draws_only_from_the_given_generator():
    model = FlowGuidedCVAE(image_channels=3, **TINY_CVAE).train()  # dropout 0.1 active
    x, y = frames(2, 12), flows(2, 8)
    with pytest.raises(ValueError, match="Generator"):
        model(x, y, mode="train")
    with pytest.raises(ValueError, match="Generator"):
        model(x, y, mode="test")  # dropout needs one too
    outs = [model(x, y, generator=torch.Generator().manual_seed(s)).prediction for s in (1, 1, 2)]
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_the_cvae_rejects_inputs_of_the_wrong_shape():
    model = FlowGuidedCVAE(image_channels=1, **TINY_CVAE)
    with pytest.raises(ValueError, match="frames"):
        model(frames(2, 12), flows(2, 8), mode="test")
    with pytest.raises(ValueError, match="latent levels"):
        FlowGuidedCVAE(channels=(8, 16, 32, 64))


def test_kl_equals_torch_distributions_closed_form():
    g = torch.Generator().manual_seed(3)
    mq, mp = torch.randn(2, 3, 2, 2, generator=g), torch.randn(2, 3, 2, 2, generator=g)
    lq, lp = torch.randn(2, 3, 2, 2, generator=g), torch.randn(2, 3, 2, 2, generator=g)
    q, p = gaussian(mq, lq), gaussian(mp, lp)
    reference = torch_kl(Normal(mq, torch.exp(0.5 * lq)), Normal(mp, torch.exp(0.5 * lp)))
    torch.testing.assert_close(kl_divergence(q, p), reference)

    # latent_kl: per level summed over the map, mean over the batch, summed over levels
    mq2, mp2 = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    output = CVAEOutput(
        prediction=torch.zeros(2, 1, 4, 4),
        posteriors=[q, gaussian(mq2)],
        priors=[p, gaussian(mp2)],
    )
    second = torch_kl(Normal(mq2, torch.ones_like(mq2)), Normal(mp2, torch.ones_like(mp2)))
    expected = reference.sum(dim=(1, 2, 3)).mean() + second.sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(latent_kl(output), expected)


def test_log_variances_are_clamped():
    d = gaussian(torch.zeros(3), torch.tensor([50.0, 0.0, -50.0]))
    assert d.log_var.tolist() == [LOG_VAR_MAX, 0.0, -LOG_VAR_MAX]
    assert torch.isfinite(kl_divergence(d, gaussian(torch.ones(3)))).all()


def test_gradient_loss_of_hand_made_images():
    target = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    prediction = torch.tensor([[[[1.0, 1.0], [1.0, 2.0]]]])
    # along x: | |1| - |0| | = 1 and | |2| - |1| | = 1 -> 1; along y: |2 - 0| = 2, |3 - 1| = 2
    torch.testing.assert_close(gradient_loss(prediction, target), torch.tensor(3.0))
    # eq. 7 compares absolute gradients: a mirrored edge costs nothing
    edge = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    torch.testing.assert_close(gradient_loss(edge.flip(-1), edge), torch.tensor(0.0))


def test_cvae_loss_combines_eq_8():
    model = FlowGuidedCVAE(image_channels=1, **TINY_CVAE).eval()
    target = frames(2, 1, seed=4)
    out = model(frames(2, 4), flows(2, 8), mode="test")
    loss = cvae_loss(out, target, cvae_weight=0.5, gradient_weight=3.0)
    torch.testing.assert_close(loss.total, 0.5 * (loss.kl + loss.frame) + 3.0 * loss.gradient)
    torch.testing.assert_close(loss.frame, ((out.prediction - target) ** 2).mean())


# ---- a few optimiser steps ----------------------------------------------------------------


def test_adam_steps_lower_the_memae_loss():
    model = MLMemAESC(**TINY_MEMAE).train()
    target = flows(8, 2, seed=7)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss = memae_loss(model(target), target).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("learn_variance", [False, True])
def test_adam_steps_lower_the_cvae_loss(learn_variance):
    model = FlowGuidedCVAE(image_channels=1, learn_variance=learn_variance, **TINY_CVAE)
    x, y = frames(4, 4), flows(4, 8)
    target = x[:, -1:]  # a learnable next frame: the last one again
    generator = torch.Generator().manual_seed(0)

    def test_loss() -> float:
        model.eval()
        with torch.no_grad():
            return cvae_loss(model(x, y, mode="test"), target).total.item()

    before = test_loss()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(12):
        model.train()
        loss = cvae_loss(model(x, y, mode="train", generator=generator), target).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert test_loss() < 0.8 * before


def test_joint_fine_tuning_passes_gradients_into_the_memae():
    memae = MLMemAESC(num_flows=1, **TINY_MEMAE)
    cvae = FlowGuidedCVAE(image_channels=1, **TINY_CVAE)
    cube = flows(2, 8)
    recon = memae.reconstruct_cube(cube)
    out = cvae(frames(2, 4), recon.reconstruction, generator=torch.Generator().manual_seed(0))
    (memae_loss(recon, cube).total + cvae_loss(out, frames(2, 1)).total).backward()
    assert all(p.grad is not None for p in memae.parameters())
    assert all(p.grad is not None for p in cvae.parameters())


# ---- presets ------------------------------------------------------------------------------


def test_presets_hold_the_paper_values():
    # Sec. 4.2: (w_r, w_p), memories, batch size and epochs per dataset
    expected = {
        "ped2": ((1.0, 0.1), 3, (128, 80)),
        "avenue": ((0.05, 1.0), 3, (128, 80)),
        "shanghaitech": ((0.02, 1.0), 2, (256, 50)),
    }
    for name, (weights, memories, (batch, epochs)) in expected.items():
        preset = get_preset(name)
        assert (preset.scoring.flow_weight, preset.scoring.frame_weight) == weights
        assert len(preset.memae.memory_levels) == memories
        assert (preset.cvae_training.batch_size, preset.cvae_training.epochs) == (batch, epochs)
        assert preset.memae.num_slots == 2000 and preset.scoring.median_window == 17
        for training in (preset.memae_training, preset.cvae_training):
            assert training.learning_rate == 1e-4 and training.betas == (0.9, 0.999)
            assert (training.decay_factor, training.decay_every) == (0.8, 50)
        losses = preset.losses
        assert (losses.reconstruction, losses.entropy, losses.cvae, losses.gradient) == (
            1.0,
            2e-4,
            1.0,
            1.0,
        )
    with pytest.raises(ValueError, match="known: avenue, cpu_small, ped2, shanghaitech"):
        get_preset("ped1")


def test_the_cpu_preset_builds_small_models():
    preset = PRESETS["cpu_small"]
    memae, cvae = preset.memae.build(), preset.cvae.build()
    assert sum(p.numel() for p in memae.parameters()) < 1_000_000
    assert sum(p.numel() for p in cvae.parameters()) < 1_000_000
    assert memae.config["memory_levels"] == [1, 2, 3]
    assert cvae.config["image_channels"] == 1
