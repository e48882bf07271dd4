"""The functions that decide each chapter's claims, on small fixed inputs whose verdict is known."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ai4m_helpers.claims import HELD, INCONCLUSIVE, NOT_HELD


# -- chapter 1 ----------------------------------------------------------------------------------
def _src_frames(seeds=3, conv_zero=False):
    from ai4m_helpers.robustness import experiment as ex

    rng = np.random.default_rng(7)
    rows = []
    for s in range(seeds):
        # PGD-AT overfits (best 0.60, last 0.50); SRC keeps its last checkpoint (0.60 / 0.58);
        # every arm gets its own noise, so the paired differences vary from seed to seed.
        for recipe, best, last, clean in ((ex.MAIN_AT, 0.60, 0.50, 0.90), (ex.MAIN_SRC, 0.60, 0.58, 0.89),
                                          (ex.TRADES, 0.62, 0.55, 0.88), (ex.TRADES_SRC, 0.62, 0.54, 0.88),
                                          (ex.alp_name(0.1), 0.6, 0.6, 0.9)):
            noise = rng.normal(0, 0.002, 3)
            for checkpoint, robust in (("best", best + noise[0]), ("last", last + noise[1])):
                rows.append({"recipe": recipe, "seed": s, "checkpoint": checkpoint, "clean": clean + noise[2],
                             "pgd": robust, "robust": robust - 0.01})
    df = pd.DataFrame(rows)
    conv = df.assign(pgd=0.0) if conv_zero else df
    return df, df, conv


def test_chapter_01_claims_on_a_known_case():
    from ai4m_helpers.robustness import experiment as ex

    apgd_df, df, conv = _src_frames()
    alp = ex.alp_name(0.1)
    gap, last, clean, trades, control, conv_gap = ex.decide_claims(apgd_df, df, conv, alp, 0.004)
    assert gap.verdict == HELD and gap.estimate.value == pytest.approx(-0.08, abs=0.005)
    diffs = ex.per_seed(df, ex.MAIN_SRC, "last", "clean") - ex.per_seed(df, ex.MAIN_AT, "last", "clean")
    assert clean.estimate.ci == pytest.approx(stats.t.interval(0.95, 2, diffs.mean(), stats.sem(diffs)))
    assert last.verdict == HELD
    assert clean.verdict == HELD and clean.estimate.value == pytest.approx(-0.01, abs=0.005)  # within 2 points
    assert trades.verdict == NOT_HELD
    assert conv_gap.verdict == HELD
    assert control.verdict == NOT_HELD and control.estimate.value == pytest.approx(-0.02, abs=0.005)
    assert last.evidence["robust best PGD-AT + SRC"] == pytest.approx(0.59, abs=0.005)
    unmatched = ex.decide_claims(apgd_df, df, conv, alp, 0.05)[4]                  # 5 points away
    assert unmatched.verdict == INCONCLUSIVE and "within" in unmatched.note
    _, _, zero = _src_frames(conv_zero=True)
    assert ex.decide_claims(apgd_df, df, zero, alp)[-1].verdict == INCONCLUSIVE      # nothing to measure
    one = ex.decide_claims(*_src_frames(seeds=1), alp)
    assert all(c.verdict == INCONCLUSIVE for c in one)                              # one seed, no noise
    assert len(ex.decide_claims(apgd_df, df, None, alp)) == 5                       # no conv net run


def test_chapter_01_best_last_table_has_gaps_per_recipe():
    from ai4m_helpers.robustness import experiment as ex

    _, df, _ = _src_frames()
    table = ex.best_last_table(df, "pgd")
    assert table.loc[ex.MAIN_AT, ("gap", "mean")] == pytest.approx(0.10, abs=0.005)
    assert table.loc[ex.MAIN_AT, ("seeds", "n")] == 3
    one = ex.best_last_table(_src_frames(seeds=1)[1], "pgd")
    assert "std" not in one.columns.get_level_values(1)


# -- chapter 2 ----------------------------------------------------------------------------------
def test_chapter_02_claims_on_known_hits():
    from ai4m_helpers.attribution import experiment as ex

    hits = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1], float)
    assert ex.attribution_claim(hits, chance=1 / 6).verdict == HELD            # 17/20 > 0.5
    assert ex.attribution_claim(hits[:4], chance=1 / 6).verdict == INCONCLUSIVE  # 4/4: [0.40, 1] straddles 0.5
    assert ex.attribution_claim(np.zeros(30), chance=1 / 6).verdict == NOT_HELD

    base = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 0], float)
    better = np.ones(10)
    knowledge = ex.knowledge_claim({"K1": base, "K2": better, "K1 pair": base, "K2 pair": better})
    labelled, paired = knowledge.parts.values()
    assert labelled.verdict == HELD and paired.verdict == INCONCLUSIVE      # pairs add nothing here
    assert knowledge.verdict == INCONCLUSIVE

    random_hits = np.tile(np.linspace(0.2, 0.9, 4), (12, 1))                 # accuracy grows with budget
    ranked_hits = random_hits.copy()
    more, ranked = ex.prompt_claims(random_hits, ranked_hits, [1, 5, 10, 40])
    assert more.verdict == HELD and ranked.verdict == INCONCLUSIVE
    assert more.estimate.value == pytest.approx(0.9 - (0.2 + 2 * 0.7 / 3))    # 40 prompts against 10
    assert ex.mid_budget([1, 2, 5, 10, 20, 40]) == 3 and ex.mid_budget([1, 2, 3]) == 0


def test_chapter_02_sibling_claim():
    from ai4m_helpers.attribution import experiment as ex

    on_sibling = np.array([1, 1, 1, 1, 1, 1, 0, 1], bool)
    assert ex.sibling_claim(on_sibling, np.full(8, 0.2)).verdict == HELD
    assert ex.sibling_claim(np.zeros(8, bool), np.full(8, 0.2)).verdict == NOT_HELD
    none = ex.sibling_claim(np.zeros(0, bool), np.zeros(0))
    assert none.verdict == INCONCLUSIVE and "no errors" in none.note



# -- chapter 3 ----------------------------------------------------------------------------------
def _fidelity_frame(with_density=1.0, without=4.0, classical_without=4.0, n=40):
    rng = np.random.default_rng(3)
    rows = []
    for arm, learned, classical in (("density", with_density, with_density),
                                    ("no_density", without, classical_without)):
        for seed in range(2):
            for image in range(n):
                rows.append({"arm": arm, "seed": seed, "image": image,
                             "learned_error": abs(learned + rng.normal(0, 0.5)),
                             "classical_error": abs(classical + rng.normal(0, 0.5))})
    return pd.DataFrame(rows)


def test_chapter_03_fidelity_needs_both_counters_to_agree():
    pytest.importorskip("diffusers")
    from ai4m_helpers.counting import experiment as ex

    held = ex.fidelity_claim(_fidelity_frame())
    assert held.verdict == HELD and held.parts["learned"].estimate.value == pytest.approx(3.0, abs=0.2)
    assert held.parts["learned"].estimate.n == 80 and held.parts["learned"].margin == ex.FIDELITY_MARGIN
    # The classical counter sees no difference: the claim does not hold on one counter alone.
    split = ex.fidelity_claim(_fidelity_frame(classical_without=1.0))
    assert split.parts["learned"].verdict == HELD and split.parts["classical"].verdict == NOT_HELD
    assert split.verdict != HELD
    # Better, but by less than the one-object margin: not held.
    close = ex.fidelity_claim(_fidelity_frame(without=1.3, classical_without=1.3))
    assert close.verdict == NOT_HELD
    # With a ControlNet per seed the replicate is a seed: two seeds' means, a wide interval.
    # A counter that cannot count real scenes measures nothing: its part is inconclusive.
    blind = ex.fidelity_claim(_fidelity_frame(), floors={"learned counter MAE on real": 6.0,
                                                         "classical counter MAE on real": 0.5,
                                                         "mean-count MAE on real": 8.0})
    assert blind.parts["learned"].verdict == INCONCLUSIVE and "mean count" in blind.parts["learned"].note
    assert blind.parts["classical"].verdict == HELD and blind.verdict == INCONCLUSIVE
    by_seed = ex.fidelity_claim(_fidelity_frame(), per_seed=True)
    assert by_seed.parts["learned"].estimate.n == 2 and by_seed.parts["learned"].estimate.unit == "seed"


def test_chapter_03_downstream_claims_pair_arms_by_seed():
    pytest.importorskip("diffusers")
    from ai4m_helpers.counting import experiment as ex

    means = {"real": 5.0, "no_density": 4.8, "density": 4.5, "swap": 4.0, "swap_any": 4.9}
    noise = np.random.default_rng(5).normal(0, 0.03, (4, 5, 3, 2))
    # On "ring" the swap does nothing (no gain over no swap): a minority of shapes.
    rows = [{"seed": s, "arm": arm, "shape": shape,
             "MAE": (means["density"] if shape == "ring" and arm == "swap" else m) + 0.5 * s
             + noise[s, i, k, 0], "RMSE": 1.5 * m + 0.5 * s + noise[s, i, k, 1]}
            for s in range(4) for i, (arm, m) in enumerate(means.items())
            for k, shape in enumerate(("cross", "diamond", "ring"))]
    lowers, swap, unconstrained, no_density = ex.downstream_claims(pd.DataFrame(rows))
    mae = lowers.parts["MAE"]
    assert lowers.verdict == HELD and mae.parts["cross"].estimate.value == pytest.approx(1.0, abs=0.05)
    assert swap.parts["ring"].verdict != HELD and swap.verdict == HELD       # 2 of 3 shapes: majority
    assert unconstrained.verdict == HELD and no_density.verdict == HELD
    assert swap.parts["cross"].estimate.n == 4 and swap.parts["cross"].estimate.unit == "seed"
    flipped = pd.DataFrame(rows).replace({"arm": {"swap": "density", "density": "swap"}})
    assert ex.downstream_claims(flipped)[1].verdict == NOT_HELD
    one_seed = ex.downstream_claims(pd.DataFrame([r for r in rows if r["seed"] == 0]))
    assert all(c.verdict == INCONCLUSIVE for c in one_seed)

# -- chapter 4 ----------------------------------------------------------------------------------
def test_chapter_04_claims_on_known_tables():
    from ai4m_helpers.concepts import experiment as ex

    rng = np.random.default_rng(0)
    n = 12
    per_neuron = pd.DataFrame({"dataset": "digits", "attribute": "digit",
                               "ranking": ["dot"] * n + ["cosine"] * n,
                               "neuron": np.r_[np.full(n, 0.5), np.full(n, 0.5)] + rng.normal(0, 0.01, 2 * n),
                               "concept vectors": np.r_[np.full(n, 0.45), np.full(n, 0.8)] + rng.normal(0, 0.01, 2 * n),
                               ex.SUBSETS: np.r_[np.full(n, 0.4), np.full(n, 0.6)] + rng.normal(0, 0.01, 2 * n)})
    dot, cosine = ex.purity_claim(per_neuron, "dot"), ex.purity_claim(per_neuron, "cosine")
    assert dot.verdict == NOT_HELD and dot.parts["digits, digit: vs neuron"].verdict == NOT_HELD
    assert dot.parts[f"digits, digit: vs {ex.SUBSETS}"].verdict == HELD
    assert cosine.verdict == HELD
    # a factor the model was not trained on goes to its own claim, decided per factor and ranking
    colour = per_neuron.assign(dataset="shapes", attribute="colour",
                               **{"concept vectors": per_neuron["neuron"] - 0.05})
    both = pd.concat([per_neuron, colour])
    assert ex.purity_claim(both, "cosine").verdict == HELD
    beyond = ex.untrained_claim(both)
    assert beyond.verdict == NOT_HELD and set(beyond.parts) == {"shapes, colour (dot): vs neuron",
                                                                "shapes, colour (cosine): vs neuron"}
    assert ex.untrained_claim(per_neuron).verdict == INCONCLUSIVE                   # no shapes run

    rows = []
    for t, per_neuron_count in ((0.3, [4, 3, 5, 4]), (0.7, [2, 1, 2, 1])):
        rows += [{"dataset": "digits", "seed": 0, "threshold": t, "chosen": t == 0.3, "start": "neuron",
                  "direction": i, "concepts": c} for i, c in enumerate(per_neuron_count)]
        rows += [{"dataset": "digits", "seed": 0, "threshold": t, "chosen": t == 0.3, "start": "SVD direction",
                  "direction": i, "concepts": c - 1 + i % 2} for i, c in enumerate(per_neuron_count)]
    counts = pd.DataFrame(rows)
    assert ex.granularity_claim(counts).verdict == HELD
    svd = ex.svd_claim(counts).parts["digits"]
    assert svd.estimate.value == pytest.approx(-0.5) and svd.estimate.unit == "direction"
    assert svd.verdict == INCONCLUSIVE                    # four directions each: the interval is wide
    empty = ex.purity_claim(per_neuron.iloc[:0], "dot")
    assert empty.verdict == INCONCLUSIVE and "no neuron split" in (empty.estimate.reason or empty.note)


# -- chapter 7 ----------------------------------------------------------------------------------
def _loop_result(kal_better: bool, seeds=6):
    from ai4m_helpers.active_learning import experiment as ex
    from ai4m_helpers.active_learning.loop import LoopResult, Member
    from ai4m_helpers.active_learning.strategies import STRATEGIES

    members = [Member(name, s, start) for start in ex.STARTS for s in range(seeds) for name in STRATEGIES]
    rounds = 3
    f1 = np.zeros((rounds + 1, len(members)))
    violation = np.full((rounds + 1, len(members)), 0.2)
    covered = np.zeros((rounds + 1, len(members)), int)
    selection = np.full(len(members), 1.0)
    rng = np.random.default_rng(3)
    for i, m in enumerate(members):
        noise = rng.normal(0, 0.005, 3)          # every member its own noise
        is_kal = m.strategy.startswith("kal")
        f1[:, i] = (0.8 if is_kal == kal_better else 0.6) + noise[0]
        violation[:, i] = (0.1 if is_kal == kal_better else 0.3) + noise[1]
        first_full = (1 if is_kal == kal_better else 3) + (m.seed % 2)   # rounds vary with the seed
        covered[:, i] = np.where(np.arange(rounds + 1) >= first_full, 3, 1)
        selection[i] = (0.1 if m.strategy == "kal" else 1.0) * (1 + noise[2])
    return LoopResult(members, rounds, [], f1, violation, covered, selection, [], [])


def test_chapter_07_claims_are_decided_per_task():
    from ai4m_helpers.active_learning import experiment as ex

    class Task:
        region_names = ("a", "b", "c")
        y_pool = np.zeros((1, 3))          # three outputs: every baseline counts

    good, bad = _loop_result(True), _loop_result(False)
    claims = ex.decide_claims({"xor": good, "iris": good}, {"xor": Task, "iris": Task})
    assert [c.verdict for c in claims] == [HELD] * 6       # F1 per start (3), coverage, violations, time
    mixed = ex.decide_claims({"xor": good, "digits": bad}, {"xor": Task, "digits": Task})
    f1_random = mixed[0]
    assert f1_random.parts["xor"].verdict == HELD and f1_random.parts["digits"].verdict == NOT_HELD
    assert f1_random.verdict == NOT_HELD                     # "on every task"
    assert mixed[3].parts["digits, biased start"].verdict == NOT_HELD   # coverage per task and start
    record = f1_random.to_record()
    assert [p["part"] for p in record["parts"]] == ["xor", "digits"]
    assert len(record["parts"][0]["parts"]) == len(ex.BASELINES_F1)


# -- chapter 8 ----------------------------------------------------------------------------------
def _audits(seeds=2, n=400, vulnerable_group=1, balanced_helps=True, defence_helps=False, hsj_factor=1.1,
            datasets=("blend",)):
    """Known distances: one skin tone at 0.3, the other at 1.0 (or 0.3 where a mitigation helps)."""
    from ai4m_helpers.data.faces import Faces
    from ai4m_helpers.fairness import experiment as ex

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], n // 2)
    skin = np.repeat([0, 1], n // 2)
    tests = {d: Faces(np.zeros((n, 3, 2, 2), np.float32), y, {"skin": skin}) for d in datasets}
    white_idx = ex.attacked_subset(skin, y, 200)
    black_idx = ex.attacked_subset(skin, y, 80)
    audits = []
    for d in datasets:
        for condition in ex.CONDITIONS:
            for s in range(seeds):
                y_pred = np.where(rng.random(n) < 0.95, y, 1 - y)
                helps = (condition == "balanced" and balanced_helps) or \
                    (condition == "adversarially trained" and defence_helps)

                def dist(idx, factor=1.0):
                    g = skin[idx]
                    far = 0.3 if helps else 1.0
                    return factor * (np.where(g == vulnerable_group, 0.3, far) + rng.uniform(0, 0.05, len(idx)))

                distances = {name: (dist(white_idx), white_idx) for name in ex.WHITE}
                distances[ex.BLACK] = (dist(black_idx, hsj_factor), black_idx)
                audits.append(ex.Audit(d, condition, s, {}, y_pred, distances))
    return audits, tests


def test_chapter_08_claims_on_a_known_case():
    from ai4m_helpers.fairness import experiment as ex

    p = {"bootstrap": 200, "seed": 0}
    audits, tests = _audits(seeds=3, datasets=("blend", "upsample"))
    acceptable, agree, balancing, defence = ex.decide_claims(audits, tests, p)
    assert set(acceptable.parts) == {"blend", "upsample"}                  # decided per dataset
    rb = acceptable.parts["blend"].parts["robustness bias (DeepFool) is large"]
    assert rb.verdict == HELD and 0 < rb.evidence["chance level of max RB"] < 0.5
    assert rb.evidence["P(dark skin closer)"] > 0.9 and rb.evidence["max RB (curves)"] > 0.9
    light, _ = _audits(seeds=3, vulnerable_group=0)                        # light skin closer: also a bias
    rb = ex.acceptable_claim(light, one_test := _audits(seeds=1)[1], p).parts["blend"].parts[
        "robustness bias (DeepFool) is large"]
    assert rb.verdict == HELD and rb.evidence["P(dark skin closer)"] < 0.1
    assert agree.parts["blend"].parts["imbalanced: DeepFool and HopSkipJump"].verdict == HELD
    assert balancing.parts["upsample"].parts["robustness bias (DeepFool)"].verdict == HELD
    # perfectly separated groups give every seed the same size of bias: six seeds decide that exactly
    kept, _ = _audits(seeds=6)
    assert ex.defence_claim(kept, one_test, p).verdict == HELD              # the defence left the bias alone
    helped, _ = _audits(seeds=3, defence_helps=True)
    assert ex.defence_claim(helped, one_test, p).verdict == NOT_HELD
    one_seed, _ = _audits(seeds=1)
    assert ex.balancing_claim(one_seed, one_test, p).verdict == INCONCLUSIVE
    same, _ = _audits(seeds=3, balanced_helps=False)
    assert ex.balancing_claim(same, one_test, p).parts["blend"].parts["robustness bias (DeepFool)"].verdict != HELD


def test_chapter_08_agreement_is_an_equivalence_on_the_same_images():
    from ai4m_helpers.fairness import experiment as ex

    p = {"bootstrap": 200, "seed": 0}
    # the black-box attack finds the other skin tone closer: the orders differ, the attacks disagree
    audits, tests = _audits(seeds=2)
    for a in audits:
        d, idx = a.distances[ex.BLACK]
        a.distances[ex.BLACK] = (np.where(tests["blend"].attributes["skin"][idx] == 1, 1.0, 0.3), idx)
    assert ex.agreement_claim(audits, tests, p).verdict == NOT_HELD
    # uniformly looser black-box distances change no ratio: they agree
    looser, _ = _audits(seeds=2, hsj_factor=4.0)
    assert ex.agreement_claim(looser, tests, p).verdict == HELD
    # small ratios in opposite directions (x1.2 each way) are within x1.5 but not in the same order
    mild, _ = _audits(seeds=2)
    for a in mild:
        for name in (*ex.WHITE, ex.BLACK):
            d, idx = a.distances[name]
            dark = tests["blend"].attributes["skin"][idx] == 1
            closer = dark if name != ex.BLACK else ~dark
            a.distances[name] = (np.where(closer, 1.0, 1.2) + np.linspace(0, 0.01, len(idx)), idx)
    agree = ex.agreement_claim(mild, tests, p).parts["blend"].parts["imbalanced: DeepFool and HopSkipJump"]
    assert agree.verdict == NOT_HELD and agree.parts["ratio within x1.5"].verdict == HELD


def test_chapter_08_misclassified_images_are_left_out_not_counted():
    from ai4m_helpers.fairness import experiment as ex

    p = {"bootstrap": 200, "seed": 0}
    audits, tests = _audits(seeds=3)
    for a in audits:                                                         # a fifth of the images: NaN
        for name, (d, idx) in a.distances.items():
            a.distances[name] = (np.where(np.arange(len(d)) % 5 == 0, np.nan, d), idx)
    rb = ex.acceptable_claim(audits, tests, p).parts["blend"].parts["robustness bias (DeepFool) is large"]
    assert rb.verdict == HELD and rb.evidence["measured images per detector"] == 160
