"""Chang et al. 2022's auto-encoders: sizes, the motion stack, variance attention (eqs. 7-9),
skip connections, seeded weights, and the losses of eqs. 3 and 6."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from vad.methods.dissociation.losses import gradient_loss, motion_loss, spatial_loss
from vad.methods.dissociation.network import (
    VARIANCE_EPSILON,
    DecoderBlock,
    Dissociation,
    EncoderBlock,
    MotionAutoencoder,
    NetworkConfig,
    SpatialAutoencoder,
    VarianceAttention,
    initialize_weights,
)


def _clip(config: NetworkConfig, height: int, width: int, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    shape = (batch, config.image_channels, config.clip_length, height, width)
    return torch.rand(shape, generator=generator)


def test_presets_and_validation():
    paper, cpu = NetworkConfig.paper(3), NetworkConfig.cpu(1, attention=False)
    assert (paper.widths, paper.input_frames, paper.attention) == ((64, 128, 256), 4, True)
    assert (cpu.widths, cpu.input_frames, cpu.attention) == ((16, 32, 64), 4, False)
    assert paper.clip_length == 5 and paper.negative_slope == 0.2
    for arguments, message in (
        ((2, 4, (8, 8, 8), True), "image_channels"),
        ((1, 0, (8, 8, 8), True), "input_frames"),
        ((1, 4, (8, 8), True), "widths"),
        ((1, 4, (8, 0, 8), True), "widths"),
        ((1, 4, (8, 8, 8), True, 1.5), "negative_slope"),
    ):
        with pytest.raises(ValueError, match=message):
            NetworkConfig(*arguments)


@pytest.mark.parametrize(
    ("config", "height", "width"),
    [
        (NetworkConfig.cpu(1), 16, 24),
        (NetworkConfig.cpu(3), 16, 24),
        (NetworkConfig.cpu(3, attention=False), 32, 32),
        (NetworkConfig.paper(1), 32, 32),
        (NetworkConfig.paper(3), 32, 32),
    ],
)
def test_output_shapes(config, height, width):
    model = Dissociation(config, seed=0)
    clip = _clip(config, height, width)
    channels, bottleneck = config.image_channels, config.widths[2]
    latent = (2, bottleneck, height // 8, width // 8)
    frame = torch.rand(2, channels, height, width)
    stack = torch.rand(2, config.input_frames * channels, height, width)
    assert model.spatial.encode(frame).shape == latent
    appearance, reconstruction = model.spatial(frame)
    assert appearance.shape == latent and reconstruction.shape == frame.shape
    motion, skips = model.motion.encode(stack)
    assert motion.shape == latent
    assert [skip.shape for skip in skips] == [
        (2, config.widths[0], height // 2, width // 2),
        (2, config.widths[1], height // 4, width // 4),
    ]
    motion, difference = model.motion(stack)
    assert motion.shape == latent and difference.shape == frame.shape

    output = model(clip)
    assert output.fif_reconstruction.shape == output.difference.shape == frame.shape
    assert output.appearance.shape == output.motion.shape == latent
    assert torch.equal(output.lif_prediction, output.fif_reconstruction + output.difference)
    assert model.downsampling == 8
    representation = torch.cat([output.appearance, output.motion], dim=1)
    assert representation.shape[1] == model.representation_channels == 2 * bottleneck


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 5, 20, 32), (1, 1, 5, 32, 12), (1, 1, 4, 32, 32), (1, 3, 5, 32, 32), (1, 5, 32, 32)],
)
def test_bad_clip_shapes_raise_naming_the_shape(shape):
    model = Dissociation(NetworkConfig.cpu(1))
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        model(torch.rand(shape))
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        model.targets(torch.rand(shape))


def test_autoencoders_refuse_frames_that_are_not_multiples_of_8():
    config = NetworkConfig.cpu(1)
    with pytest.raises(ValueError, match=re.escape("(1, 1, 12, 16)")):
        SpatialAutoencoder(config).encode(torch.rand(1, 1, 12, 16))
    with pytest.raises(ValueError, match=re.escape("(1, 4, 16, 20)")):
        MotionAutoencoder(config)(torch.rand(1, 4, 16, 20))
    with pytest.raises(ValueError, match=re.escape("(1, 3, 16, 16)")):  # 3 of 4 frames
        MotionAutoencoder(config).attention_maps(torch.rand(1, 3, 16, 16))


def test_spatial_stream_sees_the_fif_and_motion_stream_the_frames_before_the_lif():
    config = NetworkConfig.cpu(3)
    model = Dissociation(config, seed=0).eval()
    clip = _clip(config, 16, 16)
    inputs = {}
    for name in ("spatial", "motion"):
        getattr(model, name).register_forward_pre_hook(
            lambda _module, args, name=name: inputs.__setitem__(name, args[0])
        )
    with torch.no_grad():
        output = model(clip)
        changed_lif = clip.clone()
        changed_lif[:, :, -1] = torch.rand_like(changed_lif[:, :, -1])
        unchanged = model(changed_lif)
    assert torch.equal(inputs["spatial"], clip[:, :, 0])
    # frame-major: channels 0-2 are frame 0's RGB, 3-5 frame 1's, ...
    assert torch.equal(inputs["motion"], torch.cat([clip[:, :, t] for t in range(4)], dim=1))
    for name in ("fif_reconstruction", "difference", "appearance", "motion"):
        assert torch.equal(getattr(unchanged, name), getattr(output, name)), name

    fif, difference, lif = model.targets(clip)
    assert torch.equal(fif, clip[:, :, 0]) and torch.equal(lif, clip[:, :, 4])
    assert torch.equal(difference, clip[:, :, 4] - clip[:, :, 0])


def _seeded_attention(channels: int) -> VarianceAttention:
    attention = VarianceAttention(channels).double()
    initialize_weights(attention, seed=3, negative_slope=0.2)
    with torch.no_grad():  # a non-zero bias, so that the test also covers it
        attention.embedding.bias.copy_(torch.linspace(-0.5, 0.5, channels))
    return attention


def test_attention_map_matches_eqs_8_and_9_computed_by_hand():
    """Eq. 8's variance, relative to its maximum over the map (ours), through eq. 9's softmax."""
    attention = _seeded_attention(3)
    features = torch.randn(
        2, 3, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        embedded = attention.embedding(features).numpy()  # eq. 7
        att = attention.attention_map(features).numpy()
        applied = attention(features).numpy()
    batch, depth, height, width = embedded.shape
    variances = np.zeros((batch, height, width))
    for b in range(batch):
        for h in range(height):
            for w in range(width):
                mean = sum(embedded[b, d, h, w] for d in range(depth)) / depth
                variances[b, h, w] = (
                    sum((embedded[b, d, h, w] - mean) ** 2 for d in range(depth)) / depth
                )
    expected = np.zeros((batch, 1, height, width))
    for b in range(batch):
        scale = max(variances[b].flat) + VARIANCE_EPSILON  # v' = v / max v
        for h in range(height):
            for w in range(width):
                expected[b, 0, h, w] = math.exp(variances[b, h, w] / scale)
        expected[b] /= expected[b].sum()
    assert att.shape == (2, 1, 2, 3)
    np.testing.assert_allclose(att, expected, rtol=1e-12)
    np.testing.assert_allclose(applied, features.numpy() * expected * 6, rtol=1e-12)


def test_attention_is_uniform_and_the_identity_for_features_equal_at_every_location():
    attention = _seeded_attention(8)
    per_channel = torch.randn(1, 8, 1, 1, dtype=torch.float64)
    features = per_channel.expand(1, 8, 4, 5).clone()
    with torch.no_grad():
        att = attention.attention_map(features)
        applied = attention(features)
    assert torch.allclose(att, torch.full_like(att, 1 / 20), rtol=1e-12, atol=0)
    assert torch.allclose(applied, features, rtol=1e-12, atol=0)


def test_attention_sums_to_one_and_favours_locations_whose_channels_vary_more():
    attention = VarianceAttention(4).double()
    with torch.no_grad():  # the embedding is the identity: v is the features' own variance
        attention.embedding.weight.copy_(torch.eye(4, dtype=torch.float64).view(4, 4, 1, 1))
        attention.embedding.bias.zero_()
    features = torch.zeros(1, 4, 3, 3, dtype=torch.float64)
    features[0, :, 1, 2] = torch.tensor([1.0, -1.0, 2.0, -2.0])  # variance 2.5
    features[0, :, 0, 0] = torch.tensor([0.5, -0.5, 0.0, 0.0])  # variance 0.125
    with torch.no_grad():
        att = attention.attention_map(features)[0, 0]
    assert att.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert att[1, 2] > att[0, 0] > att[2, 2]
    assert att[2, 2] == att[1, 1] == att[0, 1]  # variance 0
    largest = 2.5 + VARIANCE_EPSILON
    assert (att[1, 2] / att[2, 2]).item() == pytest.approx(math.exp(2.5 / largest))
    assert (att[0, 0] / att[2, 2]).item() == pytest.approx(math.exp(0.125 / largest))
    with torch.no_grad():  # v relative to its maximum: the map does not depend on the scale
        scaled = attention.attention_map(10 * features)[0, 0]
    torch.testing.assert_close(scaled, att, rtol=1e-4, atol=0)  # but for eps

    model = Dissociation(NetworkConfig.cpu(1), seed=0)
    stack = torch.rand(2, 4, 32, 16)
    with torch.no_grad():
        maps = model.motion.attention_maps(stack)
    assert [tuple(map_.shape) for map_ in maps] == [(2, 1, 16, 8), (2, 1, 8, 4), (2, 1, 4, 2)]
    for map_ in maps:
        assert torch.allclose(map_.sum((1, 2, 3)), torch.ones(2))


def test_attention_off_has_no_attention_modules_and_no_maps():
    on = Dissociation(NetworkConfig.cpu(1, attention=True))
    off = Dissociation(NetworkConfig.cpu(1, attention=False))
    assert sum(isinstance(module, VarianceAttention) for module in on.modules()) == 3
    assert not any(isinstance(module, VarianceAttention) for module in off.modules())
    assert off.motion.attention_maps(torch.rand(1, 4, 16, 16)) == []
    assert len(on.motion.attention_maps(torch.rand(1, 4, 16, 16))) == 3


def test_same_seed_same_weights_and_outputs():
    config = NetworkConfig.cpu(3)
    first, second, other = Dissociation(config, 7), Dissociation(config, 7), Dissociation(config, 8)
    first_state, second_state, other_state = (
        model.state_dict() for model in (first, second, other)
    )
    assert first_state.keys() == second_state.keys()
    for name, tensor in first_state.items():
        assert torch.equal(tensor, second_state[name]), name
    differing = [
        name
        for name, tensor in first_state.items()
        if name.endswith("weight")
        and tensor.dim() == 4
        and not torch.equal(tensor, other_state[name])
    ]
    convolutions = [
        n for n, t in first_state.items()
        if n.endswith("weight") and t.dim() == 4 and torch.count_nonzero(t) > 0
    ]  # fmt: skip
    assert differing == convolutions
    clip = _clip(config, 16, 16)
    assert all(torch.equal(a, b) for a, b in zip(first(clip), second(clip), strict=True))


def test_initialisation_kaiming_with_the_leaky_relu_gain_and_zero_biases():
    model = Dissociation(NetworkConfig.paper(1), seed=0)
    weight = model.spatial.decoder[0].residual[0].weight  # 256 -> 512 channels, 3x3
    fan_in = weight.shape[1] * 9
    expected_std = math.sqrt(2 / (1 + 0.2**2)) / math.sqrt(fan_in)
    assert weight.std().item() == pytest.approx(expected_std, rel=0.01)
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.count_nonzero(bias) == 0 for bias in biases)
    assert len(batchnorms) == 5  # 3 after the spatial encoder's blocks, 2 in its decoder
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in batchnorms)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.motion.modules())


def test_residual_branches_end_and_outputs_start_at_zero():
    model = Dissociation(NetworkConfig.cpu(1), seed=0)
    blocks = [m for m in model.modules() if isinstance(m, (EncoderBlock, DecoderBlock))]
    assert len(blocks) == 12
    assert all(torch.count_nonzero(block.residual[-1].weight) == 0 for block in blocks)
    assert all(torch.count_nonzero(block.residual[0].weight) > 0 for block in blocks)
    clip = _clip(model.config, 16, 24)
    with torch.no_grad():
        output = model(clip)
    assert torch.count_nonzero(output.fif_reconstruction) == 0
    assert torch.count_nonzero(output.difference) == 0
    assert output.appearance.abs().mean() > 0 and output.motion.abs().mean() > 0


def test_the_motion_decoder_uses_both_skip_connections():
    config = NetworkConfig.cpu(1)
    model = Dissociation(config, seed=0).eval()
    with torch.no_grad():  # trained-like weights where the initialisation has zeros
        for name, parameter in model.named_parameters():
            if torch.count_nonzero(parameter) == 0 and not name.endswith("bias"):
                parameter.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(3))
    stack = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        motion, skips = model.motion.encode(stack)
        difference = model.motion.decode(motion, skips)
        assert torch.equal(difference, model.motion(stack)[1])
        first, second = skips
        for zeroed in ((torch.zeros_like(first), second), (first, torch.zeros_like(second))):
            assert not torch.allclose(model.motion.decode(motion, zeroed), difference)


def test_gradient_loss_by_hand():
    image = torch.zeros(1, 1, 6, 6)
    image[..., 3:] = 1  # a vertical edge
    shifted = torch.roll(image, 1, dims=-1)
    assert gradient_loss(image, image).item() == 0
    assert gradient_loss(image, shifted).item() > 0

    target = torch.tensor([[0.0, 1, 3], [2, 2, 2], [0, 0, 0]]).view(1, 1, 3, 3)
    output = torch.tensor([[1.0, 1, 1], [0, 2, 4], [0, 0, 0]]).view(1, 1, 3, 3)
    # |g_x|: target [[1, 2], [0, 0], [0, 0]], output [[0, 0], [2, 2], [0, 0]]:
    #   | differences | 1, 2, 2, 2, 0, 0 -> mean 7/6
    # |g_y|: target [[2, 1, 1], [2, 2, 2]], output [[1, 1, 3], [0, 2, 4]]:
    #   | differences | 1, 0, 2, 2, 0, 2 -> mean 7/6
    assert gradient_loss(target, output).item() == pytest.approx(7 / 3)
    # target - output = [[-1, 0, 2], [2, 0, -2], [0, 0, 0]]: mean square 13/9
    assert spatial_loss(target, output).item() == pytest.approx(13 / 9)
    loss = motion_loss(target, output)
    assert loss.l2.item() == pytest.approx(13 / 9)
    assert loss.gradient.item() == pytest.approx(7 / 3)
    assert loss.total.item() == pytest.approx(13 / 9 + 7 / 3)
    assert all(term.dim() == 0 for term in loss)
    weighted = motion_loss(target, output, gradient_weight=0.25)  # only the gradient term
    assert weighted.l2.item() == pytest.approx(13 / 9)
    assert weighted.gradient.item() == pytest.approx(7 / 3)
    assert weighted.total.item() == pytest.approx(13 / 9 + 7 / 12)


def _moving_square_clip(config: NetworkConfig) -> torch.Tensor:
    clip = torch.full((2, config.image_channels, config.clip_length, 16, 16), 0.2)
    for t in range(config.clip_length):
        clip[0, :, t, 4:8, 2 + 2 * t : 6 + 2 * t] = 0.9
        clip[1, :, t, 6 + t : 10 + t, 8:12] = 0.7
    return clip


def _train(config: NetworkConfig, steps: int) -> list[tuple[float, float]]:
    model = Dissociation(config, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    clip = _moving_square_clip(config)
    fif, difference, _ = model.targets(clip)
    losses = []
    for _ in range(steps):
        output = model(clip)
        spatial = spatial_loss(fif, output.fif_reconstruction)
        motion = motion_loss(difference, output.difference).total
        optimizer.zero_grad()
        (spatial + motion).backward()
        optimizer.step()
        losses.append((spatial.item(), motion.item()))
    return losses


def test_adam_steps_lower_both_losses_deterministically():
    config = NetworkConfig.cpu(1)
    losses = _train(config, 20)
    (first_spatial, first_motion), (last_spatial, last_motion) = losses[0], losses[-1]
    assert last_spatial < first_spatial
    assert last_motion < first_motion
    assert _train(config, 20) == losses
