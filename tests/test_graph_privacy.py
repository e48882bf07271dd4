"""Chapter 6's helpers: the accountant against Google's dp-accounting, sensitivities, noise,
degree bounding, the generator, the loaders, the models and DP-SGD through Opacus."""
import math

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from ai4m_helpers.graph_privacy import accounting as acct  # noqa: E402
from ai4m_helpers.graph_privacy import aggregation as agg, data, models  # noqa: E402
from ai4m_helpers.graph_privacy import experiment as ex  # noqa: E402
from ai4m_helpers.graph_privacy.params import PARAMS  # noqa: E402
from ai4m_helpers.graph_privacy.train import fit_dp, fit_plain, sgd_plan  # noqa: E402
from ai4m_helpers.params import ParameterError  # noqa: E402


@pytest.mark.parametrize("steps,eps,delta", [(1, 0.25, 1e-6), (2, 1.0, 1e-6), (3, 4.0, 1e-5), (5, 8.0, 1e-7)])
def test_edge_accounting_matches_dp_accountings_pld(steps, eps, delta):
    dpa = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import PLDAccountant

    sigma = acct.edge_sigma(eps, delta, steps)
    assert sigma > 0 and acct.edge_epsilon(sigma, steps, delta) == pytest.approx(eps, rel=1e-9)
    pld = PLDAccountant()
    pld.compose(dpa.GaussianDpEvent(sigma), steps)
    assert pld.get_epsilon(delta) == pytest.approx(eps, rel=1e-3)


@pytest.mark.parametrize("eps", [1.0, 8.0, 32.0])
def test_node_accounting_matches_dp_accountings_rdp(eps):
    dpa = pytest.importorskip("dp_accounting")
    from dp_accounting.rdp import RdpAccountant

    runs = (acct.DpSgdRun(0.05, 200), acct.DpSgdRun(0.1, 100))
    sigma = acct.node_sigma(eps, 1e-4, runs, 2)
    assert sigma > 0 and acct.node_epsilon(sigma, runs, 2, 1e-4) == pytest.approx(eps, rel=1e-9)
    rdp = RdpAccountant(orders=[float(a) for a in acct.ORDERS])
    for r in runs:
        rdp.compose(dpa.PoissonSampledDpEvent(r.q, dpa.GaussianDpEvent(sigma)), r.steps)
    rdp.compose(dpa.GaussianDpEvent(sigma), 2)
    assert rdp.get_epsilon(1e-4) == pytest.approx(eps, rel=1e-6)


def test_subsampled_gaussian_rdp_reduces_to_the_gaussian_at_q_one_and_is_smaller_below():
    full = acct.rdp_subsampled_gaussian(1.0, 2.0)
    assert np.allclose(full, acct.ORDERS / 8.0)
    assert np.all(acct.rdp_subsampled_gaussian(0.01, 2.0) < full)


def test_exact_gaussian_profile_is_a_closed_form_of_mu():
    from scipy.stats import norm

    mu, eps = 1.3, 0.7
    expected = norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)
    assert acct.gaussian_delta(eps, mu) == pytest.approx(expected, rel=1e-12)


def test_infinite_epsilon_means_no_noise_and_finite_epsilon_means_some():
    """GAP's issue 3: a broken accountant silently gave zero noise at every ε."""
    assert acct.edge_sigma(math.inf, 1e-5, 2) == 0.0
    gen = torch.Generator().manual_seed(0)
    s = torch.ones(500, 16)
    assert torch.equal(agg.perturb(s, 0.0, 1.0, gen), s)
    sigma = acct.edge_sigma(1.0, 1e-5, 2)
    noisy = agg.perturb(s, sigma, math.sqrt(2), gen)
    assert (noisy - s).std().item() == pytest.approx(sigma * math.sqrt(2), rel=0.03)   # σΔ per entry


def test_an_impossible_target_is_refused():
    with pytest.raises(ValueError, match="no σ"):
        acct.calibrate(lambda s: 5.0, 1.0)


def test_rownorm_gives_unit_rows_and_keeps_zero_rows():
    h = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    out = agg.rownorm(h)
    assert torch.allclose(out.norm(dim=1), torch.tensor([1.0, 0.0, 1.0]))


def _ring_graph(n=30, extra=200, seed=0):
    rng = np.random.default_rng(seed)
    pairs = np.stack([rng.integers(0, n, extra), rng.integers(0, n, extra)])
    pairs = pairs[:, pairs[0] != pairs[1]]
    from torch_geometric.utils import coalesce, to_undirected

    return coalesce(to_undirected(torch.as_tensor(pairs, dtype=torch.long), num_nodes=n))


def test_one_directed_edge_moves_the_sum_of_unit_rows_by_exactly_one():
    edges = _ring_graph()
    h = agg.rownorm(torch.randn(30, 8))
    without = edges[:, 1:]
    diff = agg.aggregate(h, edges) - agg.aggregate(h, without)
    assert diff.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_degree_bound_keeps_a_random_subset_and_caps_a_nodes_influence_at_sqrt_d():
    edges = _ring_graph(n=30, extra=600)
    D = 5
    bounded = agg.bound_out_degree(edges, 30, D, torch.Generator().manual_seed(1))
    out_deg = torch.bincount(bounded[0], minlength=30)
    full_deg = torch.bincount(edges[0], minlength=30)
    assert torch.equal(out_deg, torch.minimum(full_deg, torch.tensor(D)))
    original = {tuple(e) for e in edges.t().tolist()}
    assert {tuple(e) for e in bounded.t().tolist()} <= original
    h = agg.rownorm(torch.randn(30, 8))
    for node in range(30):                         # removing a node's out-edges: change ≤ √D
        keep = bounded[:, bounded[0] != node]
        change = (agg.aggregate(h, bounded) - agg.aggregate(h, keep)).norm().item()
        assert change <= math.sqrt(D) + 1e-5


def test_pma_caches_k_plus_one_unit_row_hops_and_noise_changes_them():
    edges = _ring_graph()
    h0 = torch.randn(30, 8)
    gen = torch.Generator().manual_seed(0)
    clean = agg.pma(h0, edges, 2, 0.0, 1.0, gen)
    noisy = agg.pma(h0, edges, 2, 3.0, 1.0, gen)
    assert clean.shape == (30, 3, 8) and torch.allclose(clean.norm(dim=-1)[clean.norm(dim=-1) > 0], torch.tensor(1.0))
    assert torch.equal(clean[:, 0], noisy[:, 0]) and not torch.allclose(clean[:, 1:], noisy[:, 1:])


def test_the_generator_gives_the_asked_homophily_degree_and_split():
    g = data.make_csbm(4000, 5, 16, 1.0, 0.6, 20.0, 0.8, seed=0)
    assert g.homophily() == pytest.approx(0.6, abs=0.03)
    assert float(g.degrees().float().mean()) == pytest.approx(20.0, rel=0.1)
    s, t = g.edge_index
    assert not torch.any(s == t)
    assert {tuple(e) for e in g.edge_index.t().tolist()} == {(b, a) for a, b in g.edge_index.t().tolist()}
    n = g.num_nodes
    assert int(g.train.sum()) == int(0.75 * n) and int(g.val.sum()) == int(0.85 * n) - int(0.75 * n)
    assert not torch.any(g.train & g.test) and bool((g.train | g.val | g.test).all())
    assert torch.all(g.degrees() > 0)                 # isolated nodes dropped


def test_delta_rule_is_below_one_over_the_count():
    assert data.delta_for(73695) == 1e-5 and data.delta_for(999) == 1e-3
    for count in (9, 10, 12345, 10**6):
        assert data.delta_for(count) < 1 / count


def test_the_facebook_loader_reads_the_published_file_format(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 4], [1, 3]])
    np.savez(raw / "facebook.npz", features=rng.normal(size=(8, 4)).astype(np.float32),
             target=np.array([0, 1, 0, 1, 2, 2, 3, 3]), edges=edges)     # node 7 has no edge
    g = data.facebook_pages(str(tmp_path))
    assert g.num_nodes == 7 and g.num_edges == 8 and g.x.shape == (7, 4)
    assert g.num_classes == 4 and bool((g.train | g.val | g.test).all())


def test_karate_club_is_the_real_34_member_graph():
    g = data.karate_club()
    assert g.num_nodes == 34 and g.num_edges == 78 and g.num_classes == 4


def test_models_shapes_and_progap_stages_freeze_old_heads():
    x = torch.randn(10, 6)
    enc = models.Encoder(6, 3)
    assert enc(x).shape == (10, 3) and torch.allclose(enc.embed(x).norm(dim=1), torch.tensor(1.0))
    clf = models.HopClassifier(2, 16, 3)
    assert clf(torch.randn(10, 3, 16)).shape == (10, 3)
    prog = models.Progressive(6, 3)
    prog.add_stage()
    assert prog.stage == 1 and prog(x, torch.randn(10, 16)).shape == (10, 3)
    assert not any(p.requires_grad for p in prog.heads[0].parameters())


def test_dp_sgd_trains_through_opacus_and_keeps_the_best_validation_epoch():
    g = data.make_csbm(600, 3, 8, 2.0, 0.5, 10.0, 0.5, seed=1)
    masks = (g.train, g.val, g.test)
    plain = fit_plain(models.Encoder(8, 3), [g.x], g.y, masks, epochs=30, lr=0.01)
    private = fit_dp(models.Encoder(8, 3, batch_norm=False), [g.x], g.y, masks, epochs=3, lr=0.01,
                     batch=64, sigma=1.0, seed=0)
    assert plain.test_acc > 0.5 and 0.0 <= private.test_acc <= 1.0 and 1 <= private.best_epoch <= 3
    run = sgd_plan(int(g.train.sum()), 64, 3)
    assert run.steps == 3 * int(1 / run.q) and run.q == 1 / math.ceil(int(g.train.sum()) / 64)


def test_parameters_are_checked_before_any_work():
    with pytest.raises(ParameterError, match="number"):
        PARAMS.resolve(eps_edge=[1.0, float("nan")])
    with pytest.raises(ParameterError, match="increasing"):
        PARAMS.resolve(eps_node=[8.0, 4.0])
    with pytest.raises(ParameterError, match="batch"):
        PARAMS.resolve(nodes=200, batch=256)
    with pytest.raises(ParameterError):
        PARAMS.resolve(edge_unit="hyperedge")


def test_claims_are_decided_per_epsilon_from_paired_seeds():
    import pandas as pd

    rows = []
    for seed in range(4):
        rows.append({"seed": seed, "level": "edge", "method": "MLP", "epsilon": 0.0, "accuracy": 0.5})
        for eps, acc in ((1.0, 0.6), (4.0, 0.7 + 0.01 * seed), (math.inf, 0.9)):
            rows.append({"seed": seed, "level": "edge", "method": "GAP", "epsilon": eps, "accuracy": acc + 0.001 * seed})
    claim = ex.edge_claim(pd.DataFrame(rows), [0.5, 1.0, 4.0])
    assert set(claim.parts) == {"ε = 1", "ε = 4", "rises with ε"} and claim.verdict == "held"


@pytest.mark.parametrize("n,batch", [(930, 10), (2250, 256), (1000, 1000), (9300, 100)])
def test_the_accountant_counts_the_batches_opacus_actually_draws(n, batch):
    from opacus.data_loader import DPDataLoader
    from torch.utils.data import DataLoader, TensorDataset

    dp = DPDataLoader.from_data_loader(DataLoader(TensorDataset(torch.zeros(n, 1)), batch_size=batch))
    run = sgd_plan(n, batch, epochs=3)
    assert run.q == pytest.approx(dp.sample_rate) and run.steps == 3 * len(dp)


def test_node_level_methods_read_only_the_degree_bounded_graph(monkeypatch):
    P = PARAMS.resolve(nodes=400, degree=12.0, batch=64, eps_node=[8.0], dp_epochs=2, stages=1,
                       degree_bound=4, attack_per_class=40)
    g = ex.make_graph(P, 0)
    bounded = ex.bounded_edges(g, P, 0)
    assert bounded.shape[1] < g.edge_index.shape[1]
    seen = []

    def spy(fn):
        def wrapped(h, edge_index, *args):
            seen.append(edge_index)
            return fn(h, edge_index, *args)
        return wrapped

    monkeypatch.setattr(ex, "pma", spy(ex.pma))
    monkeypatch.setattr(ex, "nap", spy(ex.nap))
    rows = ex.node_level(g, P, 0, bounded)
    attack = ex.membership(g, P, 0, bounded)
    assert {r.method for r in rows} == {"MLP-DP", "GAP", "ProGAP"} and len(attack) == 2
    assert seen and all(e is bounded for e in seen)
    assert all(r.epsilon_recomputed == pytest.approx(8.0) and r.sigma > 0 for r in rows)


def test_streams_are_independent_and_repeatable():
    a, b = ex.Streams(0, "node", "GAP", 8.0), ex.Streams(0, "node", "GAP", 8.0)
    first = [a.seed() for _ in range(4)]
    assert first == [b.seed() for _ in range(4)] and len(set(first)) == 4
    assert ex.Streams(0, "node", "GAP", 4.0).seed() != first[0]
