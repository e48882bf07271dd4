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


def test_runs_with_different_seeds_share_no_replicate():
    from ai4m_helpers.robustness import PARAMS
    from ai4m_helpers.robustness.experiment import recipe_grid
    from ai4m_helpers.runtime import replicate_seeds

    assert not set(replicate_seeds(0, 10)) & set(replicate_seeds(1, 10))
    assert replicate_seeds(0, 3) == replicate_seeds(0, 5)[:3]          # more seeds extend the list
    seeds = [{r.seed for r in recipe_grid(PARAMS.resolve(profile="full", seed=s))} for s in (0, 1)]
    assert len(seeds[0]) == 5 and not seeds[0] & seeds[1]
