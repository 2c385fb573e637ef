"""Learned bottleneck at the split: few channels, bounded, on a fixed int8 grid.

The encoder (edge) maps C channels to k with one conv (1x1, or 3x3 so each symbol sums up
its neighbourhood) and tanh, so every value lies in [-1, 1] and one fixed per-tensor scale
(1/127, zero point 0) quantizes it to int8 without clipping. Training adds uniform noise of one quantization step (the usual differentiable
stand-in for rounding); eval rounds to the grid, so the exported edge emits exactly the
values the int8 wire carries and the server's decoder sees what it was trained on.
"""
from __future__ import annotations

import torch
from torch import nn

INT8_SCALE = 1.0 / 127.0
INT8_ZERO_POINT = 0


class BottleneckEncoder(nn.Module):
    def __init__(self, in_channels: int, channels: int, kernel: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.conv(x))
        if self.training:
            return y + (torch.rand_like(y) - 0.5) * INT8_SCALE
        return torch.round(y / INT8_SCALE) * INT8_SCALE


class BottleneckDecoder(nn.Module):
    """Server side: back to the backbone's channel count for the remaining stages / heads."""

    def __init__(self, channels: int, out_channels: int, blocks: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.blocks = nn.Sequential(*(_Refine(out_channels) for _ in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act(self.norm(self.conv(x))))


class _Refine(nn.Module):
    """A ResNet basic block (3x3, BN, ReLU, 3x3, BN, + input, ReLU) at the split's width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))
