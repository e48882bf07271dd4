import numpy as np
import pytest
import torch

from ai4m_helpers.active_learning import strategies as S
from ai4m_helpers.active_learning.loop import LoopConfig, Member, run_loop
from ai4m_helpers.active_learning.models import StackedMLP
from ai4m_helpers.active_learning.train import Trainer
from ai4m_helpers.active_learning.rules import (InputPredicate, KnowledgeBase, P, RuleError,
                                                 parse_rule)
from ai4m_helpers.active_learning.data import (ATTRIBUTES, biased_initial, digits_task, iris_task,
                                                 xor_task)

A, B = torch.tensor([0.0, 1.0, 0.3, 1.0]), torch.tensor([0.0, 0.0, 0.5, 1.0])
V = {"a": A, "b": B}


@pytest.mark.parametrize("text,expected", [
    ("not a", 1 - A),
    ("a and b", A * B),
    ("a or b", 1 - (1 - A) * (1 - B)),
    ("a -> b", 1 - A * (1 - B)),
    ("a <-> b", (1 - A * (1 - B)) * (1 - B * (1 - A))),
])
def test_product_t_norm_connectives(text, expected):
    assert torch.allclose(parse_rule(text).truth(V), expected)


def test_connectives_on_crisp_truth_values_are_classical_logic():
    a, b = torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([0.0, 1.0, 0.0, 1.0])
    vals = {"a": a, "b": b}
    assert parse_rule("a -> b").truth(vals).tolist() == [1, 1, 0, 1]
    assert parse_rule("a <-> b").truth(vals).tolist() == [1, 0, 0, 1]
    assert parse_rule("exactly_one(a, b)").truth(vals).tolist() == [0, 1, 1, 0]
    assert parse_rule("at_least_one(a, b)").truth(vals).tolist() == [0, 1, 1, 1]


def test_text_and_python_rules_agree_and_precedence_is_usual():
    text = parse_rule("a and not b -> a or b <-> b")
    built = ((P("a") & ~P("b")) >> (P("a") | P("b"))).iff(P("b"))
    assert torch.allclose(text.truth(V), built.truth(V))
    assert str(parse_rule("a ∧ ¬b ⇒ a")) == "(a and not b) -> a"


def test_compiled_xor_rule_matches_a_hand_computed_case():
    kb = KnowledgeBase(["xor -> (x1 and not x2) or (x2 and not x1)"], ["xor"],
                       [InputPredicate("x1", 0, 0.5), InputPredicate("x2", 1, 0.5)])
    x = torch.tensor([[0.9, 0.1], [0.9, 0.9]])          # XOR true, XOR false
    f = torch.tensor([[0.8], [0.8]])                     # the model says "1" for both
    viol = kb.violations(x, f)[:, 0]
    s = torch.sigmoid(torch.tensor(100 * 0.4))           # s(0.9) = 1 - s(0.1)
    xor_true = 1 - (1 - s * s) * (1 - (1 - s) * (1 - s))
    xor_false = 1 - (1 - s * (1 - s)) ** 2
    assert viol[0] == pytest.approx(0.8 * (1 - xor_true).item(), abs=1e-6)
    assert viol[1] == pytest.approx(0.8 * (1 - xor_false).item(), abs=1e-6)
    assert viol[1] > 0.75 and viol[0] < 1e-3


@pytest.mark.parametrize("text,message", [
    ("a and", "expected"), ("a b", "unexpected"), ("(a or b", r"expected '\)'"), ("", "empty"),
    ("a -> and", "predicate name"), ("exactly_one(a b)", r"expected '\)'"),
])
def test_malformed_rules_are_refused_with_a_position(text, message):
    with pytest.raises(RuleError, match=message):
        parse_rule(text)


def test_unknown_predicates_are_named():
    with pytest.raises(RuleError, match=r"unknown predicate\(s\) \['ostrich'\]"):
        KnowledgeBase(["bird -> ostrich"], ["bird", "mammal"])


def ctx(probs, labelled=None, kb=None, x=None, **kw):
    probs = torch.tensor(probs, dtype=torch.float32)
    n = len(probs)
    labelled = np.zeros(n, bool) if labelled is None else np.asarray(labelled)
    x = torch.zeros(n, 1) if x is None else x
    return S.Context(x, probs, labelled, kb, rng=np.random.default_rng(0), **kw)


def test_uncertainty_baselines_pick_the_obvious_sample():
    probs = [[0.99], [0.5], [0.02], [0.6]]
    for fn in (S.entropy, S.least_confidence, S.margin):
        assert fn(ctx(probs), 1).indices.tolist() == [1]
    # an already labelled sample is never picked again
    assert S.entropy(ctx(probs, labelled=[False, True, False, False]), 1).indices.tolist() == [3]


def test_margin_uses_the_two_top_classes():
    probs = [[0.9, 0.1, 0.0], [0.5, 0.45, 0.1], [0.3, 0.1, 0.05]]
    assert S.margin(ctx(probs, class_outputs=slice(0, 3)), 1).indices.tolist() == [1]


def test_bald_prefers_disagreement_between_dropout_passes():
    mc = torch.tensor([[[0.5], [0.05]], [[0.5], [0.95]]])   # sample 0 agrees at 0.5; 1 disagrees
    c = ctx([[0.5], [0.5]], mc_probs=mc)
    assert S.bald(c, 1).indices.tolist() == [1]


def test_coreset_picks_the_farthest_points_greedily():
    emb = torch.tensor([[0.0], [0.1], [5.0], [10.0]])
    c = ctx([[0.5]] * 4, labelled=[True, False, False, False], embedding=emb)
    assert S.coreset(c, 2).indices.tolist() == [3, 2]


def test_random_picks_distinct_unlabelled_samples():
    picks = S.random_strategy(ctx([[0.5]] * 10, labelled=[True] * 5 + [False] * 5), 5).indices
    assert sorted(picks.tolist()) == [5, 6, 7, 8, 9]


def test_kal_ranks_by_violation_and_caps_each_rule():
    kb = KnowledgeBase(["a -> b", "b -> a"], ["a", "b"])
    probs = [[1.0, 0.0], [0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.5, 0.5]]
    # violations of rule 1 (a -> b): 1.0, 0.9, 0.8; rule 2 (b -> a): 0.7 for sample 3
    plain = S.make_kal(diversity=False)(ctx(probs, kb=kb), 2)
    assert plain.indices.tolist() == [0, 1] and plain.rules.tolist() == [0, 0]
    diverse = S.make_kal(diversity=True)(ctx(probs, kb=kb), 2)
    assert diverse.indices.tolist() == [0, 3] and diverse.rules.tolist() == [0, 1]


def test_diversity_fills_up_in_score_order_when_rules_run_out():
    score = torch.tensor([5.0, 4.0, 3.0, 2.0])
    rule = torch.tensor([0, 0, 0, 0])
    assert S.diverse_top(score, rule, np.zeros(4, bool), 3).tolist() == [0, 1, 2]


def test_tasks_have_consistent_labels_and_rules():
    xor = xor_task(400, 100, 0)
    assert xor.x_pool.shape == (400, 2) and set(np.unique(xor.y_pool)) == {0, 1}
    # True labels satisfy the rules, except within the soft predicates' width of a threshold.
    clear = (np.abs(xor.x_pool - 0.5) > 0.05).all(1)
    viol = xor.kb.violations(torch.tensor(xor.x_pool[clear]), torch.tensor(xor.y_pool[clear]))
    assert viol.max() < 0.01
    iris = iris_task(50, 0)
    assert len(iris.x_pool) == 100 and iris.y_pool.sum(1).tolist() == [1] * 100
    digits = digits_task(500, 0)
    assert digits.y_pool.shape[1] == 10 + len(ATTRIBUTES)
    viol = digits.kb.violations(torch.tensor(digits.x_pool), torch.tensor(digits.y_pool))
    assert viol.max() < 1e-6                           # labels obey every digit rule exactly
    start = biased_initial(xor, 10, np.random.default_rng(0), (0,))
    assert set(xor.region_pool[start]) == {0}


def test_stacked_members_with_the_same_seed_start_equal_and_train_independently():
    model = StackedMLP([3, 3, 4], 2, 8, 1, dropout=0.0)
    w = model.stack.params["hidden.weight"]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    x = torch.rand(3, 6, 2)
    y = torch.zeros(3, 6, 1)
    y[1] = 1.0                                          # member 1 learns something else
    Trainer(model, 1e-2).fit(x, y, 20)
    p = model.predict(x)
    assert p[1].mean() > p[0].mean() and p[1].mean() > p[2].mean()


def test_the_loop_runs_every_strategy_and_is_deterministic():
    task = xor_task(300, 100, 0)
    members = [Member(name, 0, "biased") for name in S.STRATEGIES]
    initial = {(0, "biased"): biased_initial(task, 10, np.random.default_rng(0), (0,))}
    cfg = LoopConfig(rounds=2, epochs=5, hidden=8, per_round=5)
    a = run_loop(task, S.STRATEGIES, members, initial, cfg)
    b = run_loop(task, S.STRATEGIES, members, initial, cfg)
    assert a.labelled_counts == [10, 15, 20]
    assert np.array_equal(a.f1, b.f1) and a.f1.shape == (3, len(members))
    for m, member in enumerate(members):
        picked = np.concatenate(a.picks[m])
        assert len(set(picked)) == 10 and not set(picked) & set(initial[(0, "biased")])
    assert a.pick_rules[a.index("kal", "biased")[0]][0] is not None


def test_bald_and_coreset_compute_their_own_passes_from_the_model():
    model = StackedMLP([0, 1], 2, 8, 1, dropout=0.5)
    x = torch.rand(30, 2)
    c = S.Context(x, model.predict(x)[1], np.zeros(30, bool), rng=np.random.default_rng(0),
                  model=model, member=1, mc_passes=4)
    assert len(S.bald(c, 3).indices) == 3 and c.mc_probs.shape == (4, 30, 1)
    assert len(S.coreset(c, 3).indices) == 3
    assert torch.allclose(c.embedding, model.hidden(x)[1])


def test_every_strategy_is_timed_around_everything_it_needs_to_choose():
    """The model's pass over the pool happens inside the timer, for KAL as for BALD; random,
    which looks at no model output, pays for none."""
    import time

    class SlowModel:
        def __init__(self, inner):
            self.inner = inner

        def member_predict(self, x, m):
            time.sleep(0.05)
            return self.inner.member_predict(x, m)

        def member_mc_predict(self, x, m, passes):
            return self.inner.member_mc_predict(x, m, passes)

        def member_hidden(self, x, m):
            return self.inner.member_hidden(x, m)

    task = xor_task(200, 50, 0)
    x = torch.tensor(task.x_pool)
    model = SlowModel(StackedMLP([0], 2, 8, 1))
    seconds = {}
    for name, strategy in S.STRATEGIES.items():
        ctx = S.Context(x, None, np.zeros(len(x), bool), task.kb, task.class_outputs,
                        rng=np.random.default_rng(0), model=model, member=0, mc_passes=2)
        _, seconds[name] = S.timed_select(strategy, ctx, 5)
    assert seconds["random"] < 0.02
    assert all(seconds[n] >= 0.05 for n in ("kal", "kal_plain", "entropy", "margin", "least_confidence"))


def test_macro_f1_equals_scikit_learns_for_every_member():
    from sklearn.metrics import f1_score

    from ai4m_helpers.active_learning.loop import macro_f1

    rng = np.random.default_rng(0)
    for task in (xor_task(100, 60, 0), digits_task(100, 0)):
        probs = rng.random((3, len(task.y_test), task.y_test.shape[1]))
        probs[2] = 0.0                                     # a member that predicts nothing
        cls = task.class_outputs
        expected = [f1_score(task.y_test[:, cls], p[:, cls] > 0.5, average="macro", zero_division=0)
                    for p in probs]
        assert np.allclose(macro_f1(task, task.y_test, probs), expected)


def test_the_rules_as_parameters_and_the_new_baselines():
    from ai4m_helpers.active_learning import PARAMS
    from ai4m_helpers.active_learning import experiment as ex
    from ai4m_helpers.active_learning.train import RulePenalty

    p = PARAMS.resolve(xor_pool=300, xor_test=200)
    xor, iris = ex.build_task("xor", p), ex.build_task("iris", p)
    assert ex.rules_only_f1(xor) == 1.0                          # the XOR rules are the labels
    assert 0.8 < ex.rules_only_f1(iris) < 1.0                    # the Iris rules classify most flowers
    wrong = ex.build_task("xor", PARAMS.resolve(xor_pool=300, xor_test=200, xor_threshold=0.3))
    assert ex.rules_only_f1(wrong) < 0.9
    fewer = ex.build_task("iris", PARAMS.resolve(drop_rules=["iris:4"]))
    assert len(fewer.kb) == 3 and "exactly_one" not in " ".join(fewer.kb.texts)
    assert len(ex.members(p, xor)) < len(ex.members(p, iris))   # no partial-knowledge split of 2 rules
    assert len(S.known_rules(15, 0.25, seed=1)) == 4 and len(S.known_rules(4, 0.5, seed=1)) == 2

    model = StackedMLP([0, 1], 2, 8, 1)
    penalty = RulePenalty(xor.kb, torch.tensor(xor.x_pool), torch.tensor([0.0, 1.0]))(model)
    assert penalty[0] == 0 and penalty[1] > 0                    # only the weighted member pays
