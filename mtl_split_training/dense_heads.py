"""Dense task heads on the server: a light FPN / U-Net style decoder per task over the feature
pyramid the server has, and the task's output layer (layouts: mtl_split_core.bundle).

The server's pyramid is the decoded split tensor plus the output of every backbone stage
after the split. Features from before the split stay on the robot (sending them would
multiply the bytes on the wire), so the finest level a decoder sees is the split tensor
itself: dense tasks want a split at stride 8-16. The decoder merges the levels top-down
(1x1 lateral convs, upsample, add), then upsamples in x2 steps (bilinear + depthwise-separable
conv) to stride 4, where the detection head predicts and from where segmentation and depth
are upsampled to the input size inside the ONNX graph.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

OUTPUT_STRIDE = 4
DEPTH_PRIOR_M = 3.0  # the depth output starts near this (exp of a zero-initialized layer)
HEATMAP_PRIOR = 0.1  # initial centre-heatmap probability (CenterNet's bias init)


def _separable(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
    )


class PyramidDecoder(nn.Module):
    """Feature pyramid (finest first) -> one map of `channels` at stride OUTPUT_STRIDE."""

    def __init__(self, level_channels: list[int], finest_stride: int, channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in level_channels)
        self.merge = _separable(channels)
        steps = max(0, round(math.log2(max(finest_stride, OUTPUT_STRIDE) / OUTPUT_STRIDE)))
        self.up = nn.ModuleList(_separable(channels) for _ in range(steps))

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](pyramid[-1])
        for level, lateral in zip(reversed(pyramid[:-1]), reversed(self.lateral[:-1])):
            x = F.interpolate(x, size=level.shape[-2:], mode="bilinear", align_corners=False) + lateral(level)
        x = self.merge(x)
        for block in self.up:
            x = block(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        return x


class DenseHead(nn.Module):
    """Decoder + output layer of one dense task; forward(pyramid) -> the ONNX output."""

    def __init__(self, kind: str, level_channels: list[int], finest_stride: int, num_classes: int,
                 input_size: int, channels: int):
        super().__init__()
        self.kind, self.input_size = kind, input_size
        self.decoder = PyramidDecoder(level_channels, finest_stride, channels)
        out = {"segmentation": num_classes, "depth": 1, "detection": num_classes}[kind]
        self.predict = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(channels, out, 1))
        if kind == "detection":
            self.boxes = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                       nn.Conv2d(channels, 4, 1))
            nn.init.constant_(self.predict[-1].bias, -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR))
        if kind == "depth":
            nn.init.zeros_(self.predict[-1].weight)
            nn.init.zeros_(self.predict[-1].bias)

    def raw(self, pyramid: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the losses read: segmentation logits / log-depth at the input size; detection
        heatmap logits and log box distances (in grid cells) on the stride-4 grid."""
        x = self.decoder(pyramid)
        y = self.predict(x)
        if self.kind == "detection":
            return {"heatmap": y, "log_ltrb": self.boxes(x).clamp(max=8.0)}
        y = F.interpolate(y, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return {"logits": y} if self.kind == "segmentation" else {"log_depth": y + math.log(DEPTH_PRIOR_M)}

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        return self.export(self.raw(pyramid))

    def export(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw outputs -> the bundle's output layout (probabilities, metres, input pixels)."""
        if self.kind == "segmentation":
            return raw["logits"]
        if self.kind == "depth":
            return torch.exp(raw["log_depth"])
        stride = self.input_size / raw["heatmap"].shape[-1]
        return torch.cat([torch.sigmoid(raw["heatmap"]), torch.exp(raw["log_ltrb"]) * stride], dim=1)
