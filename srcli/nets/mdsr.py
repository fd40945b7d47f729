"""MDSR (Lim et al. 2017): one body shared by x2/x3/x4 with scale-specific heads and tails.

Key names follow EDSR-PyTorch (``pre_process.k``, ``upsample.k``).
"""
from __future__ import annotations

import torch
from torch import nn

from .common import ConfigurableModule, MeanShift, Upsampler, conv3x3, shallow_copy
from .edsr import DIV2K_MEAN, ResBlock
from .tailfold import FoldedTail


class MDSR(ConfigurableModule):
    architecture = "mdsr"

    def __init__(
        self,
        *,
        scales: tuple[int, ...] = (2, 3, 4),
        num_blocks: int = 16,
        num_features: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_MEAN,
    ) -> None:
        super().__init__()
        self.remember(scales=list(scales), num_blocks=num_blocks, num_features=num_features,
                      res_scale=res_scale, rgb_range=rgb_range, rgb_mean=list(rgb_mean))
        self.rgb_range = rgb_range
        self.scale_list = list(scales)
        self.sub_mean = MeanShift(rgb_range, rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range, rgb_mean, sign=1)
        self.head = nn.Sequential(conv3x3(3, num_features))
        self.pre_process = nn.ModuleList(
            nn.Sequential(ResBlock(num_features, 5), ResBlock(num_features, 5)) for _ in scales
        )
        blocks: list[nn.Module] = [ResBlock(num_features, res_scale=res_scale) for _ in range(num_blocks)]
        blocks.append(conv3x3(num_features, num_features))
        self.body = nn.Sequential(*blocks)
        self.upsample = nn.ModuleList(Upsampler(s, num_features) for s in scales)
        self.tail = nn.Sequential(conv3x3(num_features, 3))

    def scale_index(self, scale: int) -> int:
        if scale not in self.scale_list:
            raise ValueError(f"this MDSR model has scales {self.scale_list}, not x{scale}")
        return self.scale_list.index(scale)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        index = self.scale_index(scale if scale is not None else self.scale_list[0])
        x = self.sub_mean(x * self.rgb_range)
        x = self.head(x)
        x = self.pre_process[index](x)
        x = x + self.body(x)
        x = self.upsample[index](x)
        x = self.tail(x)
        return self.add_mean(x) / self.rgb_range


class MDSRAtScale(nn.Module):
    """Wraps MDSR so that inference code can treat it as a single-scale network."""

    def __init__(self, mdsr: MDSR, scale: int) -> None:
        super().__init__()
        mdsr.scale_index(scale)
        self.mdsr = mdsr
        self.scale = scale
        self.architecture = "mdsr"
        self.config = dict(mdsr.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mdsr(x, self.scale)

    def inference_copy(self) -> MDSRAtScale:
        """This scale's upsampler and tail folded into one low-resolution conv (same weights)."""
        mdsr = self.mdsr
        index = mdsr.scale_index(self.scale)
        folded_mdsr = shallow_copy(mdsr)
        upsample = list(mdsr.upsample)
        upsample[index] = FoldedTail(nn.Sequential(mdsr.upsample[index], mdsr.tail), mdsr.config["num_features"])
        folded_mdsr.upsample = nn.ModuleList(upsample)
        folded_mdsr.tail = nn.Identity()
        runner = shallow_copy(self)
        runner.mdsr = folded_mdsr
        return runner
