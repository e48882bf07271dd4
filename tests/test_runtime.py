import pytest
import torch

from ai4m_helpers.runtime import choose_device, describe_device, seed_everything


def test_same_seed_gives_the_same_numbers():
    seed_everything(5)
    a = torch.randn(4), torch.nn.Linear(3, 2).weight.detach().clone()
    seed_everything(5)
    b = torch.randn(4), torch.nn.Linear(3, 2).weight.detach().clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_auto_device_falls_back_to_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto").type == expected
    assert describe_device("cpu").startswith("cpu: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_one_fails_clearly():
    with pytest.raises(RuntimeError, match="no CUDA device"):
        choose_device("cuda")
