import numpy as np
import pytest
import torch

from ai4m_helpers.robustness import train as training
from ai4m_helpers.robustness.attacks import pgd_linf
from ai4m_helpers.many_models import ModelStack
from ai4m_helpers.robustness.evaluation import expected_calibration_error
from ai4m_helpers.robustness.models import MLP, ConvNet
from ai4m_helpers.robustness.objectives import alp_loss, cross_entropy, pinball, src_loss, trades_kl
from ai4m_helpers.robustness.train import Recipe, TrainConfig, train_recipes

Z_NAT = [[2.0, 0.5, -1.0], [0.2, 1.5, 0.0]]
Z_ADV = [[0.5, 1.5, -1.0], [0.1, 1.9, 0.3]]
Y = [0, 1]   # residuals: 2.0 - 0.5 = 1.5 and 1.5 - 1.9 = -0.4


def test_pgd_stays_in_the_eps_ball_and_pixel_range_and_raises_the_loss():
    torch.manual_seed(0)
    model = MLP(64, 32, 1, 10)
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    eps = 0.1
    x_adv = pgd_linf(lambda xa: cross_entropy(model(xa), y), x, eps, eps / 4, 10)
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert cross_entropy(model(x_adv), y) > cross_entropy(model(x), y)


def test_pinball_is_the_quantile_loss():
    u = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(pinball(u, 0.5), torch.tensor([1.0, 0.0, 1.5]))
    assert torch.allclose(pinball(u, 0.8), torch.tensor([0.4, 0.0, 2.4]))


@pytest.mark.parametrize("tau,expected", [(0.5, (0.75 + 0.2) / 2), (0.8, (1.2 + 0.08) / 2)])
def test_src_matches_a_hand_computed_case(tau, expected):
    z_nat, z_adv, y = torch.tensor(Z_NAT), torch.tensor(Z_ADV), torch.tensor(Y)
    assert src_loss(z_nat, z_adv, y, tau).item() == pytest.approx(expected)


def test_src_gradient_flows_to_both_inputs():
    z_nat = torch.tensor(Z_NAT, requires_grad=True)
    z_adv = torch.tensor(Z_ADV, requires_grad=True)
    src_loss(z_nat, z_adv, torch.tensor(Y), 0.8).backward()
    # d/dr of rho_0.8 is 0.8 for r > 0 and -0.2 for r < 0; the mean halves it.
    assert torch.allclose(z_nat.grad, torch.tensor([[0.4, 0, 0], [0, -0.1, 0]]))
    assert torch.allclose(z_adv.grad, -z_nat.grad)


def test_src_can_stop_the_natural_gradient():
    z_nat = torch.tensor(Z_NAT, requires_grad=True)
    z_adv = torch.tensor(Z_ADV, requires_grad=True)
    src_loss(z_nat, z_adv, torch.tensor(Y), 0.5, detach_natural=True).backward()
    assert z_nat.grad is None and z_adv.grad.abs().sum() > 0


def test_src_per_member_with_an_ensemble_axis():
    z_nat = torch.tensor([Z_NAT, Z_NAT])
    z_adv = torch.tensor([Z_ADV, Z_NAT])
    out = src_loss(z_nat, z_adv, torch.tensor(Y), torch.tensor([0.5, 0.8]))
    assert out.tolist() == pytest.approx([0.475, 0.0])


def test_alp_and_trades_kl_on_known_cases():
    z = torch.tensor(Z_NAT)
    assert trades_kl(z, z).item() == pytest.approx(0.0, abs=1e-7)
    assert trades_kl(z, torch.tensor(Z_ADV)).item() > 0
    expected = np.mean([(1.5 ** 2 + 1.0 ** 2), (0.1 ** 2 + 0.4 ** 2 + 0.3 ** 2)])
    assert alp_loss(z, torch.tensor(Z_ADV)).item() == pytest.approx(expected)


def test_ece_on_a_known_case():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    # bin 0.9: accuracy 0.5, confidence 0.9; bin 0.6: accuracy 1, confidence 0.6; each half the data.
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    perfect = np.eye(3)[[0, 1, 2]]
    assert expected_calibration_error(perfect, np.array([0, 1, 2])) == pytest.approx(0.0)


@pytest.mark.parametrize("make", [lambda: MLP(64, 16, 2, 10), lambda: ConvNet(3, 8, 10)])
def test_ensemble_members_are_independent_and_extractable(make):
    ens = ModelStack.from_seeds(make, [1, 2, 3])
    shape = (64,) if isinstance(make(), MLP) else (3, 32, 32)
    x = torch.rand(3, 5, *shape)
    out = ens(x)
    assert out.shape == (3, 5, 10)
    for r in range(3):
        assert torch.allclose(ens.member(r)(x[r]), out[r], atol=1e-5)
    out[0].sum().backward()  # a loss on member 0 only
    grads = [p.grad for p in ens.parameters()]
    assert all(g[1:].abs().sum() == 0 for g in grads) and any(g[0].abs().sum() > 0 for g in grads)


def test_ensemble_of_one_matches_a_plain_module():
    ens = ModelStack.from_seeds(lambda: MLP(64, 16, 2, 10), [4])
    x = torch.rand(1, 6, 64)
    assert torch.allclose(ens(x)[0], ens.member(0)(x[0]), atol=1e-6)


def test_recipe_checks_its_arguments():
    with pytest.raises(ValueError):
        Recipe(base="fgsm")
    with pytest.raises(ValueError):
        Recipe(reg="src", tau=1.0)
    assert Recipe(reg="src", lam=1, tau=0.8).name == "PGD-AT + SRC(λ=1, τ=0.8)"


def test_best_and_last_checkpoints_are_tracked_per_member(monkeypatch):
    ens = ModelStack.from_seeds(lambda: MLP(4, 3, 1, 2), [0, 1])
    scripted = iter([np.array([0.5, 0.2]), np.array([0.4, 0.6]), np.array([0.7, 0.6])])
    monkeypatch.setattr(training, "robust_accuracy", lambda *a, **k: next(scripted))
    monkeypatch.setattr(training, "clean_accuracy", lambda *a, **k: np.array([0.9, 0.9]))
    hist = training.History([Recipe(), Recipe()], [], [], [], [], np.full(2, -1), np.full(2, -1.0),
                            ens.snapshot(), {})
    x, y = torch.rand(3, 4), torch.tensor([0, 1, 0])
    states = []
    for epoch in (1, 2, 3):
        with torch.no_grad():
            for p in ens.parameters():
                p.fill_(float(epoch))    # the weights "are" the epoch number
        states.append(epoch)
        training._evaluate_epoch(ens, hist, epoch, x, y, TrainConfig(), None)
    # member 0 peaks at epoch 3, member 1 at epoch 2 (a tie at epoch 3 keeps the earlier one)
    assert hist.best_epoch.tolist() == [3, 2]
    assert hist.best_robust.tolist() == [0.7, 0.6]
    for value in hist.best_params.values():
        assert torch.all(value[0] == 3) and torch.all(value[1] == 2)


def test_training_is_deterministic_and_mixes_recipes():
    torch.manual_seed(0)
    x, y = torch.rand(40, 64), torch.randint(0, 10, (40,))
    recipes = [Recipe(), Recipe(reg="src", lam=1.0, tau=0.8), Recipe(reg="alp", lam=0.5),
               Recipe(base="trades", reg="src", lam=1.0)]
    cfg = TrainConfig(epochs=3, batch_size=16, eval_every=1, train_steps=2, eval_steps=2)

    def run():
        ens = ModelStack.from_seeds(lambda: MLP(64, 16, 1, 10), [0, 1, 2, 3])
        return train_recipes(ens, recipes, x, y, x, y, cfg, seed=7)

    a, b = run(), run()
    assert np.array_equal(np.stack(a.val_robust), np.stack(b.val_robust))
    assert np.array_equal(np.stack(a.train_loss), np.stack(b.train_loss))
    assert a.eval_epochs == [1, 2, 3] and np.stack(a.val_robust).shape == (3, 4)
    assert all(np.isfinite(np.stack(a.train_loss)).ravel())


def _tiny_params(**over):
    from ai4m_helpers.robustness.params import PARAMS

    return {**PARAMS.defaults("smoke"), "seed": 0, "seeds": 2, **over}


def test_alp_is_swept_on_srcs_lambda_grid_and_matched_on_validation():
    import pandas as pd
    from ai4m_helpers.robustness import experiment as ex

    p = _tiny_params(lam=1.0, ablation_lambdas=[0.1, 3.0], ablation_taus=[0.5])
    names = {r.name for r in ex.recipe_grid(p)}
    assert {ex.alp_name(lam) for lam in (0.1, 1.0, 3.0)} <= names       # ALP on the same grid
    assert {ex.src_name(0.1, 0.5), ex.src_name(3.0, 0.5), ex.MAIN_SRC} <= names
    assert [lam for lam, _ in ex.sweep_names(p)["ALP"]] == [0.1, 1.0, 3.0]
    val = pd.DataFrame({"recipe": [ex.MAIN_SRC, ex.alp_name(0.1), ex.alp_name(1.0), ex.alp_name(3.0)] * 2,
                        "seed": [0] * 4 + [1] * 4,
                        "val_clean": [0.90, 0.93, 0.86, 0.70, 0.92, 0.95, 0.86, 0.72]})
    # SRC 0.91; ALP 0.94, 0.86, 0.71: λ=0.1 is closest (0.03 against 0.05)
    assert ex.matched_alp(val) == (ex.alp_name(0.1), pytest.approx(0.03))


def test_an_alp_sweep_trains_on_a_tiny_model_and_reports_validation_accuracy():
    from ai4m_helpers.robustness import experiment as ex

    p = _tiny_params(lam=1.0, ablation_lambdas=[0.1], ablation_taus=[0.5], seeds=1, width=8, epochs=2,
                     eval_every=1, n_train=60, n_val=60)
    recipes = [r for r in ex.recipe_grid(p) if r.reg == "alp" or r.name == ex.MAIN_SRC]
    torch.manual_seed(0)
    x, y = torch.rand(60, 64), torch.randint(0, 10, (60,))
    hist = train_recipes(ex.make_ensemble(p, recipes, "cpu"), recipes, x, y, x, y,
                         ex.train_config(p), seed=0)
    val = ex.validation_accuracy(hist)
    assert len(val) == 3 and val.val_clean.between(0, 1).all()
    assert ex.matched_alp(val)[0].startswith(ex.ALP_PREFIX)


def test_square_attack_respects_the_budget_and_never_beats_clean_accuracy():
    from ai4m_helpers.robustness.evaluation import art_attack

    torch.manual_seed(0)
    model = MLP(64, 16, 1, 10)
    x, y = np.random.default_rng(0).random((20, 64)), np.zeros(20, dtype=np.int64)
    out = art_attack(model, x, y, 0.1, "square", 20, image_shape=(1, 8, 8))
    assert out["max_perturbation"] <= 0.1 + 1e-6 and out["correct"].shape == (20,)
    assert out["accuracy"] <= out["clean_accuracy"]
    with pytest.raises(ValueError):
        art_attack(model, x, y, 0.1, "fgsm")


def test_worst_case_counts_an_image_only_if_every_attack_failed():
    import pandas as pd
    from ai4m_helpers.robustness import experiment as ex

    t, f = True, False

    def row(attack, correct, checkpoint="last"):
        return {"recipe": "a", "seed": 0, "checkpoint": checkpoint, "attack": attack, "correct": np.array(correct)}

    attacks = pd.DataFrame([
        row("PGD", [t, t, t, f, t, t]), row("APGD-CE", [t, t, f, f, t, t]), row("APGD-DLR", [t, t, t, f, t, f]),
        row("Square", [t, f, t, f]),                                       # fewer images
        row("PGD", [f, f, f, f, f, f], "best"),
    ])
    robust = ex.worst_of(attacks)
    assert robust.set_index("checkpoint").loc["last", "robust"] == pytest.approx(3 / 6)
    assert robust.set_index("checkpoint").loc["best", "robust"] == 0.0
    table = ex.worst_case_table(attacks).loc["a"]                           # on the first 4 images
    assert table["PGD"] == 0.75 and table["Square"] == 0.5
    assert table["worst of gradient attacks"] == 0.5 and table["worst of all"] == 0.25


def test_apgd_dlr_runs_and_respects_the_budget():
    from ai4m_helpers.robustness.evaluation import art_attack

    torch.manual_seed(0)
    model = MLP(64, 16, 1, 10)
    x, y = np.random.default_rng(1).random((12, 64)), np.arange(12) % 10
    out = art_attack(model, x, y, 0.05, "apgd-dlr", 3)
    assert out["max_perturbation"] <= 0.05 + 1e-6 and out["accuracy"] <= out["clean_accuracy"]
