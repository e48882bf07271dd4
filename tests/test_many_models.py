"""Many small models as one: the stack calls each member as itself, and each member trains as if
alone, with its own learning rate."""
import copy

import pytest
import torch
from torch import nn

from ai4m_helpers.many_models import ModelStack, PerMemberLR


def make():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))


def test_each_member_is_called_as_itself_and_written_back():
    stack = ModelStack.from_seeds(make, [0, 1, 0]).eval()
    x = torch.randn(3, 5, 4)
    out = stack(x)
    for r in range(3):
        assert torch.allclose(stack.member(r)(x[r]), out[r], atol=1e-6)
    assert torch.equal(stack.params["0.weight"][0], stack.params["0.weight"][2])      # same seed
    assert torch.allclose(stack.forward_shared(x[0])[1], stack.member(1)(x[0]), atol=1e-6)


def test_dropout_draws_differ_between_members_in_training_mode():
    stack = ModelStack.from_seeds(make, [0, 0]).train()
    out = stack.forward_shared(torch.ones(1, 4))
    assert not torch.allclose(out[0], out[1])          # identical weights, different masks


@pytest.mark.parametrize("optimiser", [
    lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-3),
    lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99)),
    lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
])
def test_per_member_learning_rates_train_each_member_as_if_alone(optimiser):
    torch.manual_seed(0)
    models = [nn.Linear(4, 2) for _ in range(2)]
    alone = [copy.deepcopy(m) for m in models]
    lrs = [0.05, 0.2]
    x, y = torch.randn(2, 16, 4), torch.randn(2, 16, 2)
    stack = ModelStack(models)
    opt = PerMemberLR(optimiser(stack.parameters(), 1.0), torch.tensor(lrs))
    solo = [optimiser(m.parameters(), lr) for m, lr in zip(alone, lrs)]
    for _ in range(5):
        opt.zero_grad()
        ((stack(x) - y) ** 2).mean(dim=(1, 2)).sum().backward()
        opt.step()
        for r, (m, o) in enumerate(zip(alone, solo)):
            o.zero_grad()
            ((m(x[r]) - y[r]) ** 2).mean().backward()
            o.step()
    for r, m in enumerate(alone):
        assert torch.allclose(stack.params["weight"][r], m.weight, atol=1e-5)
    frozen = PerMemberLR(optimiser(stack.parameters(), 1.0), torch.tensor([0.0, 0.1]))
    before = stack.snapshot()
    frozen.zero_grad()
    ((stack(x) - y) ** 2).sum().backward()
    frozen.step()
    assert torch.equal(stack.params["weight"][0], before["weight"][0])     # a zero freezes a member
    assert not torch.equal(stack.params["weight"][1], before["weight"][1])


def test_a_member_view_is_the_member_and_follows_training():
    stack = ModelStack.from_seeds(make, [0, 1]).eval()
    x = torch.randn(2, 5, 4)
    view = stack.member_view(1)
    assert torch.allclose(view(x[1]), stack(x)[1], atol=1e-6)
    opt = torch.optim.SGD(stack.parameters(), lr=0.1)
    view(x[1]).sum().backward()                       # gradients reach the stack through the view
    assert stack.params["0.weight"].grad[1].abs().sum() > 0 and stack.params["0.weight"].grad[0].abs().sum() == 0
    opt.step()
    assert torch.allclose(view(x[1]), stack(x)[1], atol=1e-6)   # the view moved with the stack


class _TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, inputs):
        x, shift = inputs
        return self.lin(x) + shift


@pytest.mark.parametrize("members", [1, 3])
def test_a_model_with_several_inputs_gets_them_as_a_tuple(members):
    stack = ModelStack.from_seeds(_TwoInputs, list(range(members)))
    x, shift = torch.randn(members, 4, 3), torch.randn(members, 4, 2)
    out = stack((x, shift))
    for r in range(members):
        torch.testing.assert_close(out[r], stack.member(r)((x[r], shift[r])))
    shared = stack.forward_shared((x[0], shift[0]))
    assert shared.shape == (members, 4, 2)
