"""Tests for the pure-PyTorch FlowNet2 (random weights; the official checkpoint is not needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vad.motion.flownet2 import (
    FlowNet2,
    FlowNet2Estimator,
    channel_norm,
    correlation,
    extract_state_dict,
    load_flownet2,
    resample2d,
    resize_flow,
)

torch.set_num_threads(2)

HEIGHT, WIDTH = 64, 128

# Names read off NVIDIA/flownet2-pytorch (models.py, networks/FlowNet{C,S,SD,Fusion}.py,
# networks/submodules.py: conv/i_conv/deconv are nn.Sequential, so weights sit under ".0").
OFFICIAL_KEYS_AND_SHAPES = {
    "flownetc.conv1.0.weight": (64, 3, 7, 7),
    "flownetc.conv_redir.0.weight": (32, 256, 1, 1),
    "flownetc.conv3_1.0.weight": (256, 473, 3, 3),
    "flownetc.deconv5.0.weight": (1024, 512, 4, 4),
    "flownetc.upsampled_flow6_to_5.bias": (2,),
    "flownetc.predict_flow2.weight": (2, 194, 3, 3),
    "flownets_1.conv1.0.weight": (64, 12, 7, 7),
    "flownets_2.upsampled_flow3_to_2.weight": (2, 2, 4, 4),
    "flownets_d.conv0.0.weight": (64, 6, 3, 3),
    "flownets_d.inter_conv5.0.weight": (512, 1026, 3, 3),
    "flownets_d.predict_flow5.weight": (2, 512, 3, 3),
    "flownetfusion.conv0.0.weight": (64, 11, 3, 3),
    "flownetfusion.inter_conv0.0.bias": (16,),
    "flownetfusion.predict_flow0.weight": (2, 16, 3, 3),
}


@pytest.fixture(scope="module")
def model() -> FlowNet2:
    torch.manual_seed(0)
    return FlowNet2().eval()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    first = torch.randint(0, 256, (2, 3, HEIGHT, WIDTH), generator=generator).float()
    second = torch.roll(first, shifts=(1, 2), dims=(2, 3))
    return first, second


@pytest.fixture(scope="module")
def reference_flow(model: FlowNet2, images) -> torch.Tensor:
    with torch.inference_mode():
        return model(*images)


@pytest.fixture(scope="module")
def checkpoint(model: FlowNet2, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flownet2") / "FlowNet2_checkpoint.pth.tar"
    torch.save({"epoch": 0, "best_EPE": 1.0, "state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def estimator(checkpoint: Path) -> FlowNet2Estimator:
    return FlowNet2Estimator(checkpoint, device="auto", batch_size=1)


def naive_correlation(first, second, max_displacement, stride):
    """Pixel-by-pixel cost volume straight from the definition of the official kernel."""
    batch, channels, height, width = first.shape
    offsets = range(-max_displacement, max_displacement + 1, stride)
    out = torch.zeros(batch, len(offsets) ** 2, height, width, dtype=first.dtype)
    for y in range(height):
        for x in range(width):
            for row, dy in enumerate(offsets):
                for col, dx in enumerate(offsets):
                    if 0 <= y + dy < height and 0 <= x + dx < width:
                        product = first[:, :, y, x] * second[:, :, y + dy, x + dx]
                        out[:, row * len(offsets) + col, y, x] = product.sum(1) / channels
    return out


def test_correlation_matches_naive_loop():
    generator = torch.Generator().manual_seed(2)
    first = torch.randn(2, 4, 7, 9, generator=generator, dtype=torch.float64)
    second = torch.randn(2, 4, 7, 9, generator=generator, dtype=torch.float64)
    fast = correlation(first, second, max_displacement=4, stride=2)
    assert fast.shape == (2, 25, 7, 9)
    torch.testing.assert_close(fast, naive_correlation(first, second, 4, 2))


def test_correlation_flownetc_setting_matches_naive_loop():
    generator = torch.Generator().manual_seed(5)
    first = torch.randn(1, 3, 8, 10, generator=generator, dtype=torch.float64)
    second = torch.randn(1, 3, 8, 10, generator=generator, dtype=torch.float64)
    fast = correlation(first, second)  # max displacement 20, stride 2 -> 21 x 21 channels
    assert fast.shape == (1, 441, 8, 10)
    torch.testing.assert_close(fast, naive_correlation(first, second, 20, 2))


def test_resample2d_integer_shift_equals_rolled_image():
    image = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(3))
    flow = torch.zeros(1, 2, 16, 20)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # out[y, x] = image[y - 2, x + 3]
    warped = resample2d(image, flow)
    rolled = torch.roll(image, shifts=(2, -3), dims=(2, 3))
    torch.testing.assert_close(warped[..., 2:, :-3], rolled[..., 2:, :-3])


def test_resample2d_half_pixel_and_border_clamp():
    image = torch.rand(1, 2, 6, 8, generator=torch.Generator().manual_seed(4))
    half = torch.zeros(1, 2, 6, 8)
    half[:, 0] = 0.5
    expected = (image[..., :-1] + image[..., 1:]) / 2
    torch.testing.assert_close(resample2d(image, half)[..., :-1], expected)
    far_left = torch.zeros(1, 2, 6, 8)
    far_left[:, 0] = -100.0
    torch.testing.assert_close(resample2d(image, far_left), image[..., :1].expand_as(image))


def test_channel_norm_is_l2_over_channels():
    tensor = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).expand(2, 2, 3, 3)
    assert torch.equal(channel_norm(tensor), torch.full((2, 1, 3, 3), 5.0))


def test_resize_flow_scales_components():
    flow = torch.ones(1, 2, 64, 128)
    resized = resize_flow(flow, 32, 96)
    assert resized.shape == (1, 2, 32, 96)
    torch.testing.assert_close(resized[0, 0], torch.full((32, 96), 0.75))
    torch.testing.assert_close(resized[0, 1], torch.full((32, 96), 0.5))


def test_state_dict_keys_and_parameter_count(model: FlowNet2):
    state = model.state_dict()
    for key, shape in OFFICIAL_KEYS_AND_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert "flownets_1.upsampled_flow6_to_5.bias" not in state  # bias=False in FlowNetS
    assert not any("corr" in key or "channelnorm" in key for key in state)

    def count(module: torch.nn.Module) -> int:
        return sum(parameter.numel() for parameter in module.parameters())

    # Totals stated in the official sources ('Parameter count = ...').
    assert count(model) == 162_518_834
    assert count(model.flownetc) == 39_175_298
    assert count(model.flownets_d) == 45_371_666
    assert count(model.flownetfusion) == 581_226


@pytest.mark.parametrize(
    ("name", "channels"), [("flownetc", 6), ("flownets_1", 12), ("flownets_d", 6)]
)
def test_subnetwork_multiscale_output_shapes(model: FlowNet2, name: str, channels: int):
    stacked = torch.randn(1, channels, HEIGHT, WIDTH)
    with torch.inference_mode():
        flows = getattr(model, name)(stacked)
    expected = [(1, 2, HEIGHT // 2**level, WIDTH // 2**level) for level in range(2, 7)]
    assert [tuple(flow.shape) for flow in flows] == expected


def test_fusion_output_is_full_resolution(model: FlowNet2):
    with torch.inference_mode():
        flow = model.flownetfusion(torch.randn(1, 11, HEIGHT, WIDTH))
    assert flow.shape == (1, 2, HEIGHT, WIDTH)


def test_flownet2_output_shape_and_per_item_normalisation(model, images, reference_flow):
    first, second = images
    with torch.inference_mode():
        single = model(first[1:], second[1:])
    assert reference_flow.shape == (2, 2, HEIGHT, WIDTH)
    assert torch.isfinite(reference_flow).all()
    torch.testing.assert_close(single, reference_flow[1:], rtol=1e-4, atol=1e-4)


def test_flownet2_rejects_sizes_not_multiple_of_64(model: FlowNet2):
    with pytest.raises(ValueError, match="divisible by 64"):
        model(torch.zeros(1, 3, 60, 64), torch.zeros(1, 3, 60, 64))


def test_checkpoint_round_trip(images, reference_flow, checkpoint: Path):
    reloaded = load_flownet2(checkpoint)
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(*images), reference_flow, rtol=0, atol=0)


def test_extract_state_dict_accepts_official_bare_and_prefixed():
    weight = torch.ones(2)
    assert extract_state_dict({"epoch": 3, "state_dict": {"a.weight": weight}}) == {
        "a.weight": weight
    }
    assert extract_state_dict({"a.weight": weight}) == {"a.weight": weight}
    assert extract_state_dict({"module.a.weight": weight}) == {"a.weight": weight}


def test_estimator_matches_model_in_batches_of_one(estimator, images, reference_flow):
    assert estimator.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    first, second = (frames.permute(0, 2, 3, 1).to(torch.uint8).numpy() for frames in images)
    flow = estimator(first, second)  # batch_size=1: two chunks
    assert flow.shape == (2, HEIGHT, WIDTH, 2) and flow.dtype == np.float32
    expected = reference_flow.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(flow, expected, rtol=1e-4, atol=1e-4)


def test_estimator_returns_flow_at_any_input_size(estimator, images):
    first, second = (frames.permute(0, 2, 3, 1).to(torch.uint8).numpy() for frames in images)
    flow = estimator(first[:1, 3:53, 5:75], second[:1, 3:53, 5:75])
    assert flow.shape == (1, 50, 70, 2) and flow.dtype == np.float32
    assert np.isfinite(flow).all() and np.abs(flow).max() > 0


def test_estimator_rejects_float_frames(estimator):
    frames = np.zeros((1, 64, 64, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="uint8"):
        estimator(frames, frames)


def test_missing_checkpoint_error_explains_what_to_do(tmp_path: Path):
    missing = tmp_path / "nowhere" / "FlowNet2_checkpoint.pth.tar"
    with pytest.raises(FileNotFoundError) as error:
        FlowNet2Estimator(missing)
    message = str(error.value)
    assert str(missing) in message
    assert "Nothing is downloaded" in message
    assert "flow.flownet2.checkpoint" in message
    assert "models/FlowNet2_checkpoint.pth.tar" in message


def test_wrong_keys_error_lists_missing_and_unexpected(tmp_path: Path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError) as error:
        load_flownet2(path)
    message = str(error.value)
    assert "missing" in message and "unexpected" in message
    assert "encoder.weight" in message
    assert "flownetc.conv1.0.bias" in message
