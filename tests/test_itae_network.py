"""ITAE's network (Table 1 sizes, lateral connections, no skips) and its reconstruction losses."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from vad.methods.itae.losses import (
    gradient_loss,
    l2_loss,
    ms_ssim,
    ms_ssim_scales,
    reconstruction_loss,
)
from vad.methods.itae.network import ITAE, DecoderLayer, ITAEConfig


def _layer_shapes(config: ITAEConfig, batch: int = 1) -> dict[str, list[tuple[int, ...]]]:
    """Each layer's input and output shape (without the batch) from a forward on meta tensors."""
    model = ITAE(config).to("meta")
    shapes: dict[str, list[tuple[int, ...]]] = {}

    def record(name: str, module: nn.Module) -> None:
        def pre_hook(_module, inputs) -> None:
            shapes.setdefault(f"{name}.in", []).append(tuple(inputs[0].shape[1:]))

        def hook(_module, _inputs, output) -> None:
            shapes.setdefault(name, []).append(tuple(output.shape[1:]))

        module.register_forward_pre_hook(pre_hook)
        module.register_forward_hook(hook)

    for name in ("appearance", "motion", "laterals"):
        for layer in getattr(model.encoder, name):
            record(name, layer)
    for layer in model.decoder.layers:
        record("decoder", layer)
    clip = torch.empty(
        batch, config.channels, config.clip_length, *config.frame_size, device="meta"
    )
    output = model(clip)
    shapes["reconstruction"] = [tuple(output.reconstruction.shape[1:])]
    return shapes


def test_paper_configuration_matches_table_1():
    shapes = _layer_shapes(ITAEConfig.paper(3))
    assert shapes["appearance"] == [
        (96, 4, 128, 128),
        (128, 4, 64, 64),
        (256, 4, 32, 32),
        (256, 4, 32, 32),
    ]
    assert shapes["motion"] == [
        (12, 16, 128, 128),
        (16, 16, 64, 64),
        (32, 16, 32, 32),
        (32, 16, 32, 32),
    ]
    assert shapes["decoder"] == [
        (256, 4, 32, 32),
        (128, 8, 64, 64),
        (96, 16, 128, 128),
        (3, 16, 256, 256),
    ]
    # laterals: 2x the motion channels on the appearance path's 4 frames; they widen the next
    # appearance layer's input, and the last one the decoder's
    assert shapes["laterals"] == [
        (24, 4, 128, 128),
        (32, 4, 64, 64),
        (64, 4, 32, 32),
        (64, 4, 32, 32),
    ]
    assert [shape[0] for shape in shapes["appearance.in"]] == [3, 96 + 24, 128 + 32, 256 + 64]
    assert shapes["appearance.in"][0] == (3, 4, 256, 256)
    assert shapes["motion.in"][0] == (3, 16, 256, 256)
    assert shapes["decoder.in"][0] == (256 + 64, 4, 32, 32)
    assert shapes["reconstruction"] == [(3, 16, 256, 256)]


def test_ucsd_variant_keeps_a_quarter_size_latent_at_240_by_360():
    shapes = _layer_shapes(ITAEConfig.paper(1, ucsd=True))
    assert shapes["appearance"] == [
        (96, 4, 120, 180),
        (128, 4, 60, 90),
        (256, 4, 60, 90),
        (256, 4, 60, 90),
    ]
    assert shapes["motion"][-1] == (32, 16, 60, 90)
    assert shapes["decoder"] == [
        (256, 4, 60, 90),
        (128, 8, 60, 90),
        (96, 16, 120, 180),
        (1, 16, 240, 360),
    ]


def test_cpu_configuration_sizes():
    config = ITAEConfig.cpu(1)
    shapes = _layer_shapes(config)
    assert config.frame_size == (128, 128) and config.latent_size == (16, 16)
    assert shapes["appearance"][-1] == (32, 4, 16, 16)
    assert shapes["motion"][-1] == (8, 16, 16, 16)
    assert shapes["decoder.in"][0] == (32 + 16, 4, 16, 16)
    assert shapes["reconstruction"] == [(1, 16, 128, 128)]
    assert _layer_shapes(ITAEConfig.cpu(3, ucsd=True))["reconstruction"] == [(3, 16, 120, 180)]


def test_real_forward_gives_a_clip_in_the_unit_range():
    config = ITAEConfig.cpu(1)
    output = ITAE(config)(torch.rand(2, 1, 16, 32, 48))
    assert output.reconstruction.shape == (2, 1, 16, 32, 48)
    assert output.appearance.shape == (2, 32, 4, 4, 6)
    assert output.motion.shape == (2, 8, 16, 4, 6)
    assert 0 <= output.reconstruction.min() and output.reconstruction.max() <= 1


def test_lateral_connection_strides_by_tau_from_motion_frames_to_appearance_frames():
    config = ITAEConfig.cpu(1)
    model = ITAE(config).eval()
    output = model(torch.rand(1, 1, 16, 32, 32))
    frame_ratio = output.motion.shape[2] // output.appearance.shape[2]
    assert model.lateral_temporal_stride == config.tau == frame_ratio == 4
    conv = model.encoder.laterals[0][0]
    assert conv.kernel_size == (5, 1, 1) and conv.padding == (2, 0, 0)
    # appearance frame j (clip frame j tau) sees motion frames j tau - 2 ... j tau + 2
    for motion_frame, appearance_frames in ((8, {2}), (10, {2, 3}), (0, {0})):
        motion = torch.zeros(1, conv.in_channels, 16, 2, 2)
        impulse = motion.clone()
        impulse[:, :, motion_frame] = 1
        with torch.no_grad():
            change = (conv(impulse) - conv(motion)).abs().sum((0, 1, 3, 4))
        assert change.shape == (4,)
        assert set(torch.nonzero(change).flatten().tolist()) == appearance_frames


def test_decoder_sees_the_clip_only_through_the_two_final_maps():
    model = ITAE(ITAEConfig.cpu(1)).eval()
    clip, other = torch.rand(2, 1, 1, 16, 32, 32)
    with torch.no_grad():
        output, other_output = model(clip), model(other)
        assert torch.equal(model.decode(output.appearance, output.motion), output.reconstruction)
        # the motion map reaches the decoder (through the last lateral connection)
        mixed = model.decode(output.appearance, other_output.motion)
        assert not torch.allclose(mixed, output.reconstruction)
        # the encoder's two maps swapped for another clip's: nothing else of `clip` remains
        handle = model.encoder.register_forward_hook(
            lambda _module, _inputs, _output: (other_output.appearance, other_output.motion)
        )
        swapped = model(clip).reconstruction
        handle.remove()
    assert torch.equal(swapped, other_output.reconstruction)


@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 8, 32, 32),
        (1, 1, 16, 36, 32),
        (1, 1, 16, 32, 20),
        (1, 3, 16, 32, 32),
        (1, 16, 32, 32),
    ],
)
def test_bad_clip_shapes_raise_naming_the_shape(shape):
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        ITAE(ITAEConfig.cpu(1))(torch.rand(shape))


def test_inconsistent_configurations_are_refused():
    paper = ITAEConfig.paper(1)
    wrong_strides = paper.decoder[:-1] + (DecoderLayer(1, (3, 3), (1, 1)),)
    with pytest.raises(ValueError, match="spatial strides"):
        ITAEConfig(1, (256, 256), paper.encoder, wrong_strides)
    with pytest.raises(ValueError, match="tau"):
        ITAEConfig(1, (256, 256), paper.encoder, paper.decoder, tau=2)
    with pytest.raises(ValueError, match="divisible"):
        ITAEConfig(1, (250, 256), paper.encoder, paper.decoder)


def test_same_seed_same_parameters_and_output():
    config = ITAEConfig.cpu(1)
    first, second, third = ITAE(config, seed=5), ITAE(config, seed=5), ITAE(config, seed=6)
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for name, tensor in first_state.items():
        assert torch.equal(tensor, second_state[name]), name
    assert not torch.equal(first.decoder.layers[0][0].weight, third.decoder.layers[0][0].weight)
    clip = torch.rand(1, 1, 16, 32, 32)
    assert torch.equal(first(clip).reconstruction, second(clip).reconstruction)


def test_adam_steps_lower_the_reconstruction_loss():
    torch.manual_seed(0)
    frames = torch.linspace(0, 1, 32).view(1, 1, 1, 1, 32).expand(2, 1, 16, 32, 32).clone()
    for t in range(16):  # a bright square moving right
        frames[:, :, t, 8:16, t : t + 8] = 1.0
    model = ITAE(ITAEConfig.cpu(1), seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        loss = reconstruction_loss(frames, model(frames).reconstruction, ms_ssim_weight=1.0)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        losses.append(loss.total.item())
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < 0.8 * losses[0]


def test_l2_is_the_mean_squared_error():
    clip = torch.zeros(1, 1, 2, 4, 4)
    assert l2_loss(clip, torch.full_like(clip, 0.5)).item() == pytest.approx(0.25)
    reconstruction = clip.clone()
    reconstruction[0, 0, 0, 0, 0] = 1.0  # one pixel of 32 off by 1
    assert l2_loss(clip, reconstruction).item() == pytest.approx(1 / 32)


def test_gradient_loss_on_step_edges():
    edge = torch.zeros(1, 1, 1, 4, 6)
    edge[..., 3:] = 1.0  # a vertical edge: one jump per row among the 5 width differences
    flat = torch.zeros_like(edge)
    assert gradient_loss(edge, flat).item() == pytest.approx(1 / 5)
    assert gradient_loss(flat, edge).item() == pytest.approx(1 / 5)
    assert gradient_loss(edge, 0.5 * edge).item() == pytest.approx(0.5 / 5)
    # a brightness shift keeps every gradient: no gradient loss, L2 0.0625
    assert gradient_loss(edge, edge + 0.25).item() == 0.0
    assert l2_loss(edge, edge + 0.25).item() == pytest.approx(0.0625)
    # a horizontal edge: one jump per column among the 3 height differences, frame by frame
    horizontal = torch.zeros(1, 1, 2, 4, 6)
    horizontal[..., 2:, :] = 1.0
    assert gradient_loss(horizontal, torch.zeros_like(horizontal)).item() == pytest.approx(1 / 3)


def test_ms_ssim_scales_shrink_with_the_frame():
    assert ms_ssim_scales(256, 256) == 5
    assert ms_ssim_scales(240, 360) == 5
    assert ms_ssim_scales(128, 128) == 4
    assert ms_ssim_scales(32, 300) == 2
    assert ms_ssim_scales(11, 11) == 1
    with pytest.raises(ValueError, match="10 x 20"):
        ms_ssim_scales(10, 20)


def test_ms_ssim_of_constant_frames_is_the_weighted_luminance_term():
    # no variance: every contrast-structure term is 1, the last scale's luminance term remains
    x, y = torch.full((1, 1, 2, 176, 176), 0.2), torch.full((1, 1, 2, 176, 176), 0.6)
    luminance = (2 * 0.2 * 0.6 + 1e-4) / (0.2**2 + 0.6**2 + 1e-4)
    assert ms_ssim(x, y).item() == pytest.approx(luminance ** (0.1333 / 1.0001), rel=1e-5)
    assert ms_ssim(x[..., :32, :32], y[..., :32, :32]).item() == pytest.approx(
        luminance ** (0.2856 / (0.0448 + 0.2856)), rel=1e-5
    )


def test_ms_ssim_properties():
    generator = torch.Generator().manual_seed(0)
    clip = torch.rand(2, 3, 2, 64, 64, generator=generator)
    noisy = (clip + 0.2 * torch.randn(clip.shape, generator=generator)).clamp(0, 1)
    assert ms_ssim(clip, clip).item() == pytest.approx(1.0, abs=1e-5)
    similarity = ms_ssim(clip, noisy).item()
    assert 0 < similarity < 0.99
    assert ms_ssim(noisy, clip).item() == pytest.approx(similarity, rel=1e-5)
    # anti-correlated frames: negative contrast-structure, floored: tiny, finite gradients
    inverted = (1 - clip).requires_grad_()
    anti = ms_ssim(clip, inverted)
    anti.backward()
    assert 0 <= anti.item() < 0.1
    assert torch.isfinite(inverted.grad).all()


def test_reconstruction_loss_adds_ms_ssim_only_with_a_weight():
    clip = torch.zeros(1, 1, 2, 16, 16)
    reconstruction = torch.full_like(clip, 0.5)
    without = reconstruction_loss(clip, reconstruction)
    assert without.ms_ssim is None
    assert without.total.item() == pytest.approx(0.25)  # L2 0.25, no gradients
    with_ssim = reconstruction_loss(clip, reconstruction, ms_ssim_weight=1.0)
    luminance = 1e-4 / (0.25 + 1e-4)  # one scale at 16 x 16: luminance only
    assert with_ssim.ms_ssim.item() == pytest.approx(luminance, rel=1e-4)
    assert with_ssim.total.item() == pytest.approx(0.25 + 1 - luminance, rel=1e-6)
