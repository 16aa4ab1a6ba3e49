"""A plain re-implementation of the original USEV network (github zexupan/USEV, AV-DPRNN), for timing only.

It follows the reference's structure and data flow as published: `GroupNorm` layers, permute/view reshapes, the
DPRNN `_padding`/`_Segmentation`/`_over_add` with two interleaved half-shifted segmentations, linear
interpolation of the visual stream, no padding masks. It exists so that `bench_backbones.py` can time the
reference and `usev-base` in the same process at identical sizes (same parameter count, 4.12M).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class VisualConv1D(nn.Module):
    def __init__(self, V=256, H=512):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.GroupNorm(1, V, eps=1e-8),
            nn.Conv1d(V, H, 1, bias=False),
            nn.ReLU(),
            nn.GroupNorm(1, H, eps=1e-8),
            nn.Conv1d(H, H, 3, padding=1, groups=H, bias=False),
            nn.PReLU(),
            nn.GroupNorm(1, H, eps=1e-8),
            nn.Conv1d(H, V, 1, bias=False),
        )

    def forward(self, x):
        return self.net(x) + x


class DualRNNBlock(nn.Module):
    def __init__(self, N, H):
        super().__init__()
        self.intra_rnn = nn.LSTM(N, H, 1, batch_first=True, bidirectional=True)
        self.inter_rnn = nn.LSTM(N, H, 1, batch_first=True, bidirectional=True)
        self.intra_norm = nn.GroupNorm(1, N, eps=1e-8)
        self.inter_norm = nn.GroupNorm(1, N, eps=1e-8)
        self.intra_linear = nn.Linear(2 * H, N)
        self.inter_linear = nn.Linear(2 * H, N)

    def forward(self, x):
        B, N, K, S = x.shape
        intra = x.permute(0, 3, 2, 1).contiguous().view(B * S, K, N)
        intra, _ = self.intra_rnn(intra)
        intra = self.intra_linear(intra.contiguous().view(B * S * K, -1)).view(B * S, K, -1)
        intra = intra.view(B, S, K, N).permute(0, 3, 2, 1).contiguous()
        intra = self.intra_norm(intra) + x
        inter = intra.permute(0, 2, 3, 1).contiguous().view(B * K, S, N)
        inter, _ = self.inter_rnn(inter)
        inter = self.inter_linear(inter.contiguous().view(B * S * K, -1)).view(B * K, S, -1)
        inter = inter.view(B, K, S, N).permute(0, 3, 1, 2).contiguous()
        return self.inter_norm(inter) + intra


class ReferenceUSEV(nn.Module):
    def __init__(self, N=256, L=40, B=64, H=128, K=100, R=6):
        super().__init__()
        self.L, self.K = L, K
        self.encoder = nn.Conv1d(1, N, L, stride=L // 2, bias=False)
        self.layer_norm = nn.GroupNorm(1, N, eps=1e-8)
        self.bottleneck_conv1x1 = nn.Conv1d(N, B, 1, bias=False)
        self.dual_rnn = nn.ModuleList(DualRNNBlock(B, H) for _ in range(R))
        self.prelu = nn.PReLU()
        self.mask_conv1x1 = nn.Conv1d(B, N, 1, bias=False)
        self.v_ds = nn.Conv1d(512, 256, 1, bias=False)
        self.ve_blocks = nn.Sequential(*[VisualConv1D() for _ in range(5)])
        self.av_conv = nn.Conv1d(B + 256, B, 1, bias=False)
        self.decoder = nn.Linear(N, L, bias=False)

    def _padding(self, x, K):
        B, N, L = x.shape
        P = K // 2
        gap = K - (P + L % K) % K
        if gap > 0:
            x = torch.cat([x, x.new_zeros(B, N, gap)], dim=2)
        pad = x.new_zeros(B, N, P)
        return torch.cat([pad, x, pad], dim=2), gap

    def _segmentation(self, x, K):
        B, N, L = x.shape
        P = K // 2
        x, gap = self._padding(x, K)
        input1 = x[:, :, :-P].contiguous().view(B, N, -1, K)
        input2 = x[:, :, P:].contiguous().view(B, N, -1, K)
        x = torch.cat([input1, input2], dim=3).view(B, N, -1, K).transpose(2, 3)
        return x.contiguous(), gap

    def _over_add(self, x, gap):
        B, N, K, S = x.shape
        P = K // 2
        x = x.transpose(2, 3).contiguous().view(B, N, -1, K * 2)
        input1 = x[:, :, :, :K].contiguous().view(B, N, -1)[:, :, P:]
        input2 = x[:, :, :, K:].contiguous().view(B, N, -1)[:, :, :-P]
        x = input1 + input2
        return x[:, :, :-gap] if gap > 0 else x

    def forward(self, mixture, visual):
        # mixture (B, samples); visual (B, video frames, 512)
        mixture_w = F.relu(self.encoder(mixture.unsqueeze(1)))
        T = mixture_w.shape[-1]
        x = self.bottleneck_conv1x1(self.layer_norm(mixture_w))
        v = self.ve_blocks(self.v_ds(visual.transpose(1, 2)))
        v = F.interpolate(v, 32 * v.shape[-1], mode="linear")
        v = F.pad(v, (0, T - v.shape[-1])) if v.shape[-1] < T else v[:, :, :T]
        x = self.av_conv(torch.cat([x, v], dim=1))
        x, gap = self._segmentation(x, self.K)
        for block in self.dual_rnn:
            x = block(x)
        x = self._over_add(x, gap)
        mask = F.relu(self.mask_conv1x1(self.prelu(x)))
        frames = self.decoder((mixture_w * mask).transpose(1, 2)).transpose(1, 2)
        return F.fold(frames, (1, (T - 1) * (self.L // 2) + self.L), (1, self.L), stride=(1, self.L // 2))[:, 0, 0]
