"""A SAFECount-style few-shot counter: similarity-aware feature enhancement (You et al., WACV 2023).

Query features and exemplar features (ROI-pooled from the same feature map at the three exemplar
boxes) are projected by a shared 1 x 1 convolution and layer norm, correlated head by head, and
the score map is normalised twice, as in SAFECount: across space (each exemplar's scores divided
by their maximum) and across exemplars (divided by their sum), the two multiplied. The exemplar
features, weighted by those similarities and placed where they match (a transposed
correlation), enhance the query features; two such blocks, then a decoder regresses the density.

Differences from SAFECount, by necessity of size: a three-layer CNN trained from scratch replaces
the frozen ImageNet ResNet-18 (no pretrained weights offline; stride 2 instead of 8 for
objects of a few pixels), and the decoder ends without a ReLU; exemplar features are bilinear
samples on a 3 x 3 grid over each box (ROI align, one sample per bin) instead of an integer crop
adaptively pooled. Every operation maps over a leading axis, so many counters train as one stack
(``many_models.ModelStack``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DENSITY_SCALE = 10.0   # the network regresses 10 x the density (small targets train slowly)


def roi_features(features: torch.Tensor, boxes: torch.Tensor, image_size: int, pool: int = 3):
    """(B, C, h, w) features, (B, K, 4) boxes (x0, y0, x1, y1) in image pixels -> (B, K, C, P, P):
    bilinear samples at the centres of a P x P grid of bins over each box."""
    b, k = boxes.shape[:2]
    steps = (torch.arange(pool, device=boxes.device, dtype=boxes.dtype) + 0.5) / pool
    x0, y0, x1, y1 = boxes.unbind(-1)                                   # (B, K)
    xs = x0[..., None] + (x1 - x0)[..., None] * steps                   # (B, K, P)
    ys = y0[..., None] + (y1 - y0)[..., None] * steps
    # grid_sample wants [-1, 1] with align_corners=False: pixel p -> (2p / size) - 1.
    gx = (2 * xs / image_size - 1)[:, :, None, :].expand(b, k, pool, pool)
    gy = (2 * ys / image_size - 1)[:, :, :, None].expand(b, k, pool, pool)
    grid = torch.stack([gx, gy], -1).reshape(b, k * pool, pool, 2)
    out = F.grid_sample(features, grid, mode="bilinear", align_corners=False)  # (B, C, K*P, P)
    return out.reshape(b, -1, k, pool, pool).transpose(1, 2)


def _channel_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return norm(x.movedim(-3, -1)).movedim(-1, -3)


class SimilarityAggregation(nn.Module):
    """Similarity comparison + similarity-weighted aggregation of SAFECount, multi-head."""

    def __init__(self, dim: int, heads: int, pool: int = 3):
        super().__init__()
        self.heads, self.pool = heads, pool
        self.proj = nn.Conv2d(dim, dim, 1)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Conv2d(dim, dim, 1)

    def similarity(self, query, exemplars):
        """Normalised similarity maps (B, heads, K, h*w) and projected exemplars."""
        b, c, h, w = query.shape
        k, p = exemplars.shape[1], self.pool
        q = _channel_norm(self.norm, self.proj(query))
        e = self.proj(exemplars.reshape(b * k, c, p, p)).reshape(b, k, c, p, p)
        e = _channel_norm(self.norm, e)
        d = c // self.heads
        patches = F.unfold(q, p, padding=p // 2).reshape(b, self.heads, d * p * p, h * w)
        kernels = e.reshape(b, k, self.heads, d, p * p).transpose(1, 2).reshape(
            b, self.heads, k, d * p * p)
        scores = torch.einsum("bhkf,bhfn->bhkn", kernels, patches) * (c * p * p) ** -0.5
        spatial = torch.exp(scores - scores.amax(-1, keepdim=True))    # / max over space
        exemplar = torch.softmax(scores, dim=2)                         # / sum over exemplars
        return spatial * exemplar, e

    def forward(self, query, exemplars):
        b, c, h, w = query.shape
        k, p = exemplars.shape[1], self.pool
        sim, e = self.similarity(query, exemplars)
        d = c // self.heads
        # Place each exemplar's features where it matched: sum_k sim_k (*) e_k, as a fold.
        values = e.reshape(b, k, self.heads, d, p * p).transpose(1, 2)   # (B, H, K, d, P*P)
        cols = torch.einsum("bhkn,bhkdq->bhdqn", sim, values).reshape(b, c * p * p, h * w)
        placed = F.fold(cols, (h, w), p, padding=p // 2)
        return self.out(placed)


class EnhancementBlock(nn.Module):
    """Query + aggregated exemplars, layer norm, a convolutional feed-forward, layer norm."""

    def __init__(self, dim: int, heads: int, pool: int = 3):
        super().__init__()
        self.aggregate = SimilarityAggregation(dim, heads, pool)
        self.ffn = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(dim, dim, 3, padding=1))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, query, exemplars):
        x = _channel_norm(self.norm1, query + self.aggregate(query, exemplars))
        return _channel_norm(self.norm2, x + self.ffn(x))


class SAFECounter(nn.Module):
    """Image (B, 3, S, S) and exemplar boxes (B, K, 4) -> density (B, S, S) (already unscaled)."""

    def __init__(self, image_size: int = 32, width: int = 16, heads: int = 4, blocks: int = 2,
                 pool: int = 3):
        super().__init__()
        self.image_size, self.pool = image_size, pool
        # Stride 2: an object of a few pixels spans one or two feature cells, as an FSC-147
        # object spans a cell or two of SAFECount's stride-8 map at 384 pixels.
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(4, width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GroupNorm(4, 2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GroupNorm(4, 2 * width), nn.ReLU())
        self.blocks = nn.ModuleList(EnhancementBlock(2 * width, heads, pool) for _ in range(blocks))
        # No activation at the end: a ReLU there can start (and stay) at zero everywhere; a
        # slightly negative density in a background pixel costs the sum little.
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, inputs):
        images, boxes = inputs
        features = self.backbone(images)
        for block in self.blocks:
            exemplars = roi_features(features, boxes, self.image_size, self.pool)
            features = block(features, exemplars)
        return self.decoder(features).squeeze(-3) / DENSITY_SCALE
