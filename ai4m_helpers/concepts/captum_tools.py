"""What a concept does, through Captum: activations of a layer, pixel attributions of a concept
direction, and the directional derivative of each class along it (the quantity TCAV tests)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def gap_activations(model: nn.Module, layer: nn.Module, x: torch.Tensor, batch: int = 512) -> np.ndarray:
    """Global-average-pooled activations (N, C) of ``layer``, with Captum's LayerActivation."""
    from captum.attr import LayerActivation

    model.eval()
    probe = LayerActivation(model, layer)
    out = [probe.attribute(x[i:i + batch]).mean(dim=(-2, -1)).detach() for i in range(0, len(x), batch)]
    return torch.cat(out).cpu().numpy()


class ConceptScore(nn.Module):
    """x -> GAP(layer(x)) · v: how strongly an image expresses a concept vector."""

    def __init__(self, model: nn.Module, layer: nn.Module, vector: np.ndarray):
        super().__init__()
        self.model, self.layer = model, layer
        self.register_buffer("v", torch.as_tensor(vector, dtype=torch.float32))

    def forward(self, x):
        store = {}
        handle = self.layer.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
        try:
            self.model(x)
        finally:
            handle.remove()
        return (store["a"].mean(dim=(-2, -1)) @ self.v.to(x.device)).unsqueeze(1)


def concept_attribution(model: nn.Module, layer: nn.Module, vector: np.ndarray, x: torch.Tensor,
                        steps: int = 32) -> np.ndarray:
    """Integrated gradients (Captum) of the concept score with respect to the input pixels."""
    from captum.attr import IntegratedGradients

    scorer = ConceptScore(model, layer, vector).to(x.device).eval()
    ig = IntegratedGradients(scorer)
    attr = ig.attribute(x, baselines=torch.zeros_like(x), target=0, n_steps=steps)
    return attr.detach().cpu().numpy()


def class_sensitivity(head: nn.Module, acts: np.ndarray, vector: np.ndarray, num_classes: int,
                      device="cpu") -> dict[str, np.ndarray]:
    """Per class: the share of images whose logit rises along the concept vector (a TCAV score,
    Kim et al. 2018, with the concept vector as the CAV), and the mean directional derivative."""
    a = torch.tensor(acts, dtype=torch.float32, device=device, requires_grad=True)
    v = torch.tensor(vector, dtype=torch.float32, device=device)
    logits = head(a)
    tcav, mean = [], []
    for c in range(num_classes):
        grad, = torch.autograd.grad(logits[:, c].sum(), a, retain_graph=True)
        d = grad @ v
        tcav.append(float((d > 0).float().mean()))
        mean.append(float(d.mean()))
    return {"tcav": np.array(tcav), "derivative": np.array(mean)}
