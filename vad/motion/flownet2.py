"""FlowNet2 optical flow (Ilg et al., CVPR 2017) in pure PyTorch.

The layer structure and parameter names follow NVIDIA's flownet2-pytorch, so that the released
``FlowNet2_checkpoint.pth.tar`` loads with ``load_state_dict(strict=True)``. The three custom CUDA
layers of that code base (Correlation, Resample2d, ChannelNorm) are written here with standard
tensor operations, so the model runs on CPU or CUDA without compiling anything.

Input size: the network needs heights and widths that are multiples of 64. ``FlowNet2Estimator``
resizes each pair *up* (bilinear) to the next multiples of 64, runs the network and resizes the
flow back to the input size, scaling u by ``width / padded_width`` and v by
``height / padded_height``. Up-sizing keeps every input pixel (the official scripts crop to the
lower multiple of 64 instead, which discards border content).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_CHECKPOINT = Path("models/FlowNet2_checkpoint.pth.tar")
CHECKPOINT_PARAM = "flow.flownet2.checkpoint"
RGB_MAX = 255.0
DIV_FLOW = 20.0
SIZE_MULTIPLE = 64
CORRELATION_MAX_DISPLACEMENT = 20
CORRELATION_STRIDE = 2


# --------------------------------------------------------------------------------------------
# Parameter-free layers (replacements for the official CUDA extensions)
# --------------------------------------------------------------------------------------------


def correlation(
    first: Tensor,
    second: Tensor,
    max_displacement: int = CORRELATION_MAX_DISPLACEMENT,
    stride: int = CORRELATION_STRIDE,
) -> Tensor:
    """FlowNetC cost volume: kernel 1, stride1 1, zero padding = ``max_displacement``.

    Output channel ``(dy_index * n + dx_index)`` with ``n = 2 * max_displacement // stride + 1``
    holds ``sum_c first[c, y, x] * second[c, y + dy, x + dx] / C`` for displacements
    ``dy, dx`` in ``range(-max_displacement, max_displacement + 1, stride)``, as in the
    official layer (y-displacement is the slow index, the sum is normalised by kernel² · C).

    One batched matmul per vertical displacement: every pixel of a row of ``first`` against
    every column of the shifted, padded row of ``second``; the ``n`` horizontal displacements
    of each pixel are then gathered from it.
    """
    batch, channels, height, width = first.shape
    count = 2 * (max_displacement // stride) + 1
    padded = F.pad(second, [max_displacement] * 4)
    first_rows = first.permute(0, 2, 3, 1)  # (B, H, W, C)
    # Padded column of horizontal displacement index k for output column x: x + k * stride.
    columns = torch.arange(width, device=first.device).view(width, 1)
    columns = columns + stride * torch.arange(count, device=first.device).view(1, count)
    columns = columns.expand(batch, height, width, count)
    cost_rows = []
    for dy_index in range(count):
        top = dy_index * stride
        second_rows = padded[:, :, top : top + height].permute(0, 2, 1, 3)  # (B, H, C, W + 2d)
        products = torch.matmul(first_rows, second_rows)  # (B, H, W, W + 2d)
        cost_rows.append(products.gather(3, columns))
    cost = torch.stack(cost_rows, dim=3).flatten(3) / channels  # (B, H, W, n * n)
    return cost.permute(0, 3, 1, 2).contiguous()


def channel_norm(tensor: Tensor) -> Tensor:
    """L2 norm over the channel axis, keeping it: (B, C, H, W) -> (B, 1, H, W)."""
    return torch.linalg.vector_norm(tensor, ord=2, dim=1, keepdim=True)


def resample2d(image: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``image`` with ``flow`` in pixels: ``out[y, x] = image[y + v, x + u]``.

    Bilinear, with out-of-range sample positions clamped to the border, like the official
    Resample2d kernel (pixel centres at integer coordinates -> ``align_corners=True``).
    """
    _, _, height, width = flow.shape
    rows = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    cols = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    sample_x = cols + flow[:, 0]
    sample_y = rows + flow[:, 1]
    grid = torch.stack(
        (
            2.0 * sample_x / max(width - 1, 1) - 1.0,
            2.0 * sample_y / max(height - 1, 1) - 1.0,
        ),
        dim=-1,
    )
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def resize_flow(flow: Tensor, height: int, width: int) -> Tensor:
    """Bilinearly resize a (B, 2, h, w) pixel flow to (height, width), rescaling u and v."""
    _, _, old_height, old_width = flow.shape
    if (old_height, old_width) == (height, width):
        return flow
    resized = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
    scale = torch.tensor([width / old_width, height / old_height], device=flow.device)
    return resized * scale.to(flow.dtype).view(1, 2, 1, 1)


def _upsample4(flow: Tensor, mode: str) -> Tensor:
    """×4 upsampling like ``nn.Upsample(scale_factor=4, mode=mode)`` in PyTorch >= 0.4.

    Bilinear uses half-pixel centres (``align_corners=False``), which is also what the Caffe
    Resample layer the weights were trained with does.
    """
    if mode == "nearest":
        return F.interpolate(flow, scale_factor=4, mode="nearest")
    return F.interpolate(flow, scale_factor=4, mode=mode, align_corners=False)


# --------------------------------------------------------------------------------------------
# Building blocks (batchNorm=False variants of the official ``submodules.py``)
# --------------------------------------------------------------------------------------------


def conv_block(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
) -> nn.Sequential:
    """Conv (with bias, 'same' padding) + LeakyReLU(0.1); weights live under ``<name>.0``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2),
        nn.LeakyReLU(0.1, inplace=True),
    )


def inter_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 conv without activation, wrapped like the official ``i_conv`` (keys ``<name>.0``)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1))


def deconv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Transposed conv ×2 (kernel 4, stride 2, padding 1) + LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1),
        nn.LeakyReLU(0.1, inplace=True),
    )


def predict_flow(in_channels: int) -> nn.Conv2d:
    """3×3 conv to a 2-channel flow."""
    return nn.Conv2d(in_channels, 2, 3, 1, 1)


def upsample_flow(bias: bool) -> nn.ConvTranspose2d:
    """Learned ×2 flow upsampling (2 -> 2 channels)."""
    return nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=bias)


def init_weights(module: nn.Module) -> None:
    """Official initialisation: Xavier-uniform weights, U(0, 1) biases for all (de)convs."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.uniform_(layer.bias)


class _FlowDecoder(nn.Module):
    """Shared FlowNet refinement decoder: levels 6 (1/64) to 2 (1/4).

    Adds ``deconv5..2``, ``predict_flow6..2``, ``upsampled_flow6_to_5..3_to_2`` and, for
    FlowNetSD, ``inter_conv5..2`` as direct attributes so the state-dict keys match.
    """

    LEVELS = (5, 4, 3, 2)

    def _add_decoder(self, with_inter_conv: bool, upsample_bias: bool) -> None:
        concat_channels = {5: 1026, 4: 770, 3: 386, 2: 194}
        deconv_channels = {5: (1024, 512), 4: (1026, 256), 3: (770, 128), 2: (386, 64)}
        inter_channels = {5: 512, 4: 256, 3: 128, 2: 64}
        self.with_inter_conv = with_inter_conv
        for level in self.LEVELS:
            setattr(self, f"deconv{level}", deconv_block(*deconv_channels[level]))
        if with_inter_conv:
            for level in self.LEVELS:
                conv = inter_conv(concat_channels[level], inter_channels[level])
                setattr(self, f"inter_conv{level}", conv)
        self.predict_flow6 = predict_flow(1024)
        for level in self.LEVELS:
            predictor_in = inter_channels[level] if with_inter_conv else concat_channels[level]
            setattr(self, f"predict_flow{level}", predict_flow(predictor_in))
        for level in self.LEVELS:
            setattr(self, f"upsampled_flow{level + 1}_to_{level}", upsample_flow(upsample_bias))

    def _decode(self, skips: Mapping[int, Tensor], deepest: Tensor) -> tuple[Tensor, ...]:
        """Coarse-to-fine decoding; returns (flow2, flow3, flow4, flow5, flow6)."""
        features = deepest
        flow = self.predict_flow6(features)
        flows = [flow]
        for level in self.LEVELS:
            upsampled_flow = getattr(self, f"upsampled_flow{level + 1}_to_{level}")(flow)
            upsampled_features = getattr(self, f"deconv{level}")(features)
            features = torch.cat((skips[level], upsampled_features, upsampled_flow), dim=1)
            predictor_in = features
            if self.with_inter_conv:
                predictor_in = getattr(self, f"inter_conv{level}")(features)
            flow = getattr(self, f"predict_flow{level}")(predictor_in)
            flows.append(flow)
        return tuple(reversed(flows))


# --------------------------------------------------------------------------------------------
# Sub-networks
# --------------------------------------------------------------------------------------------


class FlowNetC(_FlowDecoder):
    """Correlation network: siamese conv1-3, 441-channel cost volume, conv_redir, decoder.

    Input (B, 6, H, W) (two normalised RGB images stacked); output flows at 1/4..1/64 scale,
    in units of ``pixels / DIV_FLOW``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = conv_block(3, 64, kernel_size=7, stride=2)
        self.conv2 = conv_block(64, 128, kernel_size=5, stride=2)
        self.conv3 = conv_block(128, 256, kernel_size=5, stride=2)
        self.conv_redir = conv_block(256, 32, kernel_size=1)
        self.corr_activation = nn.LeakyReLU(0.1, inplace=True)
        self.conv3_1 = conv_block(32 + 21 * 21, 256)
        self.conv4 = conv_block(256, 512, stride=2)
        self.conv4_1 = conv_block(512, 512)
        self.conv5 = conv_block(512, 512, stride=2)
        self.conv5_1 = conv_block(512, 512)
        self.conv6 = conv_block(512, 1024, stride=2)
        self.conv6_1 = conv_block(1024, 1024)
        self._add_decoder(with_inter_conv=False, upsample_bias=True)
        init_weights(self)

    def forward(self, pair: Tensor) -> tuple[Tensor, ...]:
        conv2_first = self.conv2(self.conv1(pair[:, :3]))
        conv3_first = self.conv3(conv2_first)
        conv3_second = self.conv3(self.conv2(self.conv1(pair[:, 3:])))
        cost = self.corr_activation(correlation(conv3_first, conv3_second))
        conv3 = self.conv3_1(torch.cat((self.conv_redir(conv3_first), cost), dim=1))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode({2: conv2_first, 3: conv3, 4: conv4, 5: conv5}, conv6)


class FlowNetS(_FlowDecoder):
    """Simple (stacked-input) network; in FlowNet2 fed with 12 channels.

    The 12 channels are: both images, the warped second image, the flow / DIV_FLOW and the
    brightness error. Official upsampled_flow layers have no bias here.
    """

    def __init__(self, input_channels: int = 12) -> None:
        super().__init__()
        self.conv1 = conv_block(input_channels, 64, kernel_size=7, stride=2)
        self.conv2 = conv_block(64, 128, kernel_size=5, stride=2)
        self.conv3 = conv_block(128, 256, kernel_size=5, stride=2)
        self.conv3_1 = conv_block(256, 256)
        self.conv4 = conv_block(256, 512, stride=2)
        self.conv4_1 = conv_block(512, 512)
        self.conv5 = conv_block(512, 512, stride=2)
        self.conv5_1 = conv_block(512, 512)
        self.conv6 = conv_block(512, 1024, stride=2)
        self.conv6_1 = conv_block(1024, 1024)
        self._add_decoder(with_inter_conv=False, upsample_bias=False)
        init_weights(self)

    def forward(self, stacked: Tensor) -> tuple[Tensor, ...]:
        conv2 = self.conv2(self.conv1(stacked))
        conv3 = self.conv3_1(self.conv3(conv2))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode({2: conv2, 3: conv3, 4: conv4, 5: conv5}, conv6)


class FlowNetSD(_FlowDecoder):
    """Small-displacement network: stride-1 conv0, 3×3 kernels only, inter_conv before
    each flow prediction. Input (B, 6, H, W); outputs at 1/4..1/64 scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = conv_block(6, 64)
        self.conv1 = conv_block(64, 64, stride=2)
        self.conv1_1 = conv_block(64, 128)
        self.conv2 = conv_block(128, 128, stride=2)
        self.conv2_1 = conv_block(128, 128)
        self.conv3 = conv_block(128, 256, stride=2)
        self.conv3_1 = conv_block(256, 256)
        self.conv4 = conv_block(256, 512, stride=2)
        self.conv4_1 = conv_block(512, 512)
        self.conv5 = conv_block(512, 512, stride=2)
        self.conv5_1 = conv_block(512, 512)
        self.conv6 = conv_block(512, 1024, stride=2)
        self.conv6_1 = conv_block(1024, 1024)
        self._add_decoder(with_inter_conv=True, upsample_bias=True)
        init_weights(self)

    def forward(self, pair: Tensor) -> tuple[Tensor, ...]:
        conv1 = self.conv1_1(self.conv1(self.conv0(pair)))
        conv2 = self.conv2_1(self.conv2(conv1))
        conv3 = self.conv3_1(self.conv3(conv2))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode({2: conv2, 3: conv3, 4: conv4, 5: conv5}, conv6)


class FlowNetFusion(nn.Module):
    """Fuses FlowNetSD and FlowNet-CSS flows at full resolution.

    Input (B, 11, H, W): first image (3), SD flow (2), CSS flow (2), their magnitudes (2) and
    brightness errors (2). Output (B, 2, H, W) flow in pixels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = conv_block(11, 64)
        self.conv1 = conv_block(64, 64, stride=2)
        self.conv1_1 = conv_block(64, 128)
        self.conv2 = conv_block(128, 128, stride=2)
        self.conv2_1 = conv_block(128, 128)
        self.deconv1 = deconv_block(128, 32)
        self.deconv0 = deconv_block(162, 16)
        self.inter_conv1 = inter_conv(162, 32)
        self.inter_conv0 = inter_conv(82, 16)
        self.predict_flow2 = predict_flow(128)
        self.predict_flow1 = predict_flow(32)
        self.predict_flow0 = predict_flow(16)
        self.upsampled_flow2_to_1 = upsample_flow(bias=True)
        self.upsampled_flow1_to_0 = upsample_flow(bias=True)
        init_weights(self)

    def forward(self, stacked: Tensor) -> Tensor:
        conv0 = self.conv0(stacked)
        conv1 = self.conv1_1(self.conv1(conv0))
        conv2 = self.conv2_1(self.conv2(conv1))
        flow2 = self.predict_flow2(conv2)
        concat1 = torch.cat((conv1, self.deconv1(conv2), self.upsampled_flow2_to_1(flow2)), dim=1)
        flow1 = self.predict_flow1(self.inter_conv1(concat1))
        concat0 = torch.cat((conv0, self.deconv0(concat1), self.upsampled_flow1_to_0(flow1)), dim=1)
        return self.predict_flow0(self.inter_conv0(concat0))


# --------------------------------------------------------------------------------------------
# Full stack
# --------------------------------------------------------------------------------------------


class FlowNet2(nn.Module):
    """FlowNetC -> FlowNetS -> FlowNetS (= CSS) and FlowNetSD, fused by FlowNetFusion.

    ``forward(first, second)`` takes (B, 3, H, W) RGB images with values in [0, 255], H and W
    multiples of 64, and returns the (B, 2, H, W) flow from first to second in pixels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.flownetc = FlowNetC()
        self.flownets_1 = FlowNetS()
        self.flownets_2 = FlowNetS()
        self.flownets_d = FlowNetSD()
        self.flownetfusion = FlowNetFusion()

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        height, width = first.shape[-2:]
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(f"FlowNet2 needs sizes divisible by 64, got {height}x{width}")
        # Per-image, per-channel mean over both frames, as in the official forward.
        rgb_mean = torch.cat((first, second), dim=-1).mean(dim=(2, 3), keepdim=True)
        image0 = (first - rgb_mean) / RGB_MAX
        image1 = (second - rgb_mean) / RGB_MAX
        pair = torch.cat((image0, image1), dim=1)

        flow_c = _upsample4(self.flownetc(pair)[0] * DIV_FLOW, "bilinear")
        flow_s1 = self.flownets_1(self._warped_stack(pair, image0, image1, flow_c))[0]
        flow_s1 = _upsample4(flow_s1 * DIV_FLOW, "bilinear")
        flow_s2 = self.flownets_2(self._warped_stack(pair, image0, image1, flow_s1))[0]
        flow_s2 = _upsample4(flow_s2 * DIV_FLOW, "nearest")
        # The official code divides (not multiplies) the FlowNetSD output by div_flow.
        flow_sd = _upsample4(self.flownets_d(pair)[0] / DIV_FLOW, "nearest")

        fusion_input = torch.cat(
            (
                image0,
                flow_sd,
                flow_s2,
                channel_norm(flow_sd),
                channel_norm(flow_s2),
                channel_norm(image0 - resample2d(image1, flow_sd)),
                channel_norm(image0 - resample2d(image1, flow_s2)),
            ),
            dim=1,
        )
        return self.flownetfusion(fusion_input)

    @staticmethod
    def _warped_stack(pair: Tensor, image0: Tensor, image1: Tensor, flow: Tensor) -> Tensor:
        """12-channel FlowNetS input: images, warped second image, flow / 20, brightness error."""
        warped = resample2d(image1, flow)
        error = channel_norm(image0 - warped)
        return torch.cat((pair, warped, flow / DIV_FLOW, error), dim=1)


# --------------------------------------------------------------------------------------------
# Checkpoint loading and the numpy-facing estimator
# --------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def extract_state_dict(checkpoint: Mapping[str, object]) -> dict[str, Tensor]:
    """The ``state_dict`` of an official checkpoint, or the mapping itself when bare.

    A ``module.`` prefix (DataParallel) is stripped when every key carries it.
    """
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError("FlowNet2 checkpoint: 'state_dict' is not a mapping")
    state = {str(key): value for key, value in state.items()}
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def _check_state_dict(state: Mapping[str, Tensor], model: nn.Module, source: str) -> None:
    """Raise ValueError naming a few missing/unexpected keys or mismatched shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{source} is not a FlowNet2 state_dict with NVIDIA flownet2-pytorch key names: "
            f"{len(missing)} missing keys (e.g. {missing[:5]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})"
        )
    mismatched = [
        f"{key}: {tuple(state[key].shape)} != {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if tuple(state[key].shape) != tuple(tensor.shape)
    ]
    if mismatched:
        raise ValueError(f"{source}: parameter shapes differ from FlowNet2: {mismatched[:5]}")


def load_flownet2(checkpoint: str | Path, device: str | torch.device = "cpu") -> FlowNet2:
    """Build FlowNet2 from an official checkpoint (or a bare state_dict) in eval mode."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"FlowNet2 checkpoint not found: tried '{path}' (absolute: '{path.resolve()}'). "
            "Nothing is downloaded automatically. Download NVIDIA's FlowNet2_checkpoint.pth.tar "
            f"(flownet2-pytorch) yourself and put it at '{DEFAULT_CHECKPOINT}', or point the "
            f"`{CHECKPOINT_PARAM}` param (default '{DEFAULT_CHECKPOINT}') to it."
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # official files may pickle extras that weights_only refuses
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(loaded).__name__}")
    state = extract_state_dict(loaded)

    with torch.device("meta"):  # skeleton only: skips the costly random initialisation
        model = FlowNet2()
    _check_state_dict(state, model, str(path))
    state = {key: value.to(torch.float32) for key, value in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(resolve_device(device)).eval()


class FlowNet2Estimator:
    """Numpy front end: ``estimator(first, second)`` -> (B, H, W, 2) float32 flow in pixels.

    ``first`` and ``second`` are (B, H, W, 3) uint8 RGB arrays of any size; see the module
    docstring for the resize-to-multiple-of-64 policy.
    """

    def __init__(self, checkpoint: str | Path, device: str = "auto", batch_size: int = 4) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.checkpoint = Path(checkpoint)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.model = load_flownet2(self.checkpoint, self.device)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        _check_frames(first, second)
        flows = [
            self._estimate_batch(
                first[start : start + self.batch_size], second[start : start + self.batch_size]
            )
            for start in range(0, len(first), self.batch_size)
        ]
        if not flows:
            return np.zeros((*first.shape[:3], 2), dtype=np.float32)
        return np.concatenate(flows, axis=0)

    @torch.inference_mode()
    def _estimate_batch(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        height, width = first.shape[1:3]
        padded_height = _round_up(height, SIZE_MULTIPLE)
        padded_width = _round_up(width, SIZE_MULTIPLE)
        images = [
            _resize_images(self._to_tensor(frames), padded_height, padded_width)
            for frames in (first, second)
        ]
        flow = resize_flow(self.model(*images), height, width)
        return flow.permute(0, 2, 3, 1).float().cpu().numpy()

    def _to_tensor(self, frames: np.ndarray) -> Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 255] on the model device."""
        tensor = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return tensor.permute(0, 3, 1, 2).float()


def _check_frames(first: np.ndarray, second: np.ndarray) -> None:
    for name, frames in (("first", first), ("second", second)):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"{name} must be (B, H, W, 3) RGB, got shape {frames.shape}")
        if frames.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8 RGB in [0, 255], got {frames.dtype}")
    if first.shape != second.shape:
        raise ValueError(f"frame shapes differ: {first.shape} vs {second.shape}")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _resize_images(images: Tensor, height: int, width: int) -> Tensor:
    if images.shape[-2:] == (height, width):
        return images
    return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)
