"""The mechanisms that touch edges: sum aggregation over neighbours, degree bounding, and the
Gaussian perturbation that makes an aggregate private (GAP's PMA, ProGAP's NAP).

Messages flow along ``edge_index`` from source (row 0) to target (row 1), as in torch-geometric:
``aggregate(h)[v]`` is the sum of ``h[u]`` over the edges u → v. One directed edge u → v changes
one row of the sum by ``h[u]``, a unit vector after row normalisation: sensitivity 1. An
undirected edge is two directed ones, in two rows: sensitivity √2. A node with at most D
out-edges changes at most D rows by at most 1 each: sensitivity √D.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SENSITIVITY = {"directed edge": 1.0, "undirected edge": math.sqrt(2.0)}


def rownorm(h: torch.Tensor) -> torch.Tensor:
    """Every row scaled to unit L2 norm (a zero row stays zero)."""
    return F.normalize(h, p=2, dim=-1)


def aggregate(h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """Sum of the in-neighbours' rows: torch-geometric's parameter-free sum convolution."""
    from torch_geometric.nn import SimpleConv

    return SimpleConv(aggr="sum")(h, edge_index)


def perturb(s: torch.Tensor, sigma: float, sensitivity: float, generator: torch.Generator) -> torch.Tensor:
    """The Gaussian mechanism: noise of standard deviation σ·Δ on every entry."""
    if sigma == 0:
        return s
    noise = torch.randn(s.shape, generator=generator).to(s.device, s.dtype)   # CPU generator: same noise on any device
    return s + sigma * sensitivity * noise


def pma(h0: torch.Tensor, edge_index: torch.Tensor, hops: int, sigma: float, sensitivity: float,
        generator: torch.Generator) -> torch.Tensor:
    """GAP's private multi-hop aggregation, computed once: H_k = rownorm(A H_{k-1} + noise) for
    k = 1..K from H_0 = rownorm(encoder output). Returns the stack (nodes, K + 1, dims)."""
    stack = [rownorm(h0)]
    for _ in range(hops):
        stack.append(rownorm(perturb(aggregate(stack[-1], edge_index), sigma, sensitivity, generator)))
    return torch.stack(stack, dim=1)


def nap(h: torch.Tensor, edge_index: torch.Tensor, sigma: float, sensitivity: float,
        generator: torch.Generator) -> torch.Tensor:
    """ProGAP's NAP step: normalise rows, aggregate, perturb."""
    return perturb(aggregate(rownorm(h), edge_index), sigma, sensitivity, generator)


def bound_out_degree(edge_index: torch.Tensor, num_nodes: int, bound: int,
                     generator: torch.Generator) -> torch.Tensor:
    """Keep at most ``bound`` out-edges per source node, chosen uniformly at random (the others
    are dropped), so that one node reaches at most ``bound`` rows of any aggregate."""
    source = edge_index[0]
    shuffle = torch.randperm(source.numel(), generator=generator)
    order = shuffle[torch.argsort(source[shuffle], stable=True)]     # grouped by source, random within
    sorted_source = source[order]
    first = torch.searchsorted(sorted_source, torch.arange(num_nodes))
    rank = torch.arange(source.numel()) - first[sorted_source]
    return edge_index[:, order[rank < bound]]
