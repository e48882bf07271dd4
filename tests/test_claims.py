"""The claim object: estimates against scipy, verdicts on hand-made cases, combination rules,
rendering and what the record keeps."""
import numpy as np
import pytest
from scipy import stats

from ai4m_helpers import claims as C
from ai4m_helpers.results import ResultsRecord, validate_record


def test_t_interval_matches_scipy_on_a_known_sample():
    values = [0.12, 0.08, 0.15, 0.05, 0.10]
    est = C.mean_ci(values, unit="seed")
    lo, hi = stats.t.interval(0.95, df=4, loc=np.mean(values), scale=stats.sem(values))
    assert est.value == pytest.approx(0.10)
    assert est.ci == pytest.approx((lo, hi))
    assert (est.n, est.unit, est.method) == (5, "seed", "t")


def test_paired_is_the_mean_of_b_minus_a():
    est = C.paired([0.5, 0.6, 0.7], [0.6, 0.8, 0.7])
    assert est.value == pytest.approx(0.1)
    with pytest.raises(ValueError):
        C.paired([1, 2], [1, 2, 3])


def test_welch_and_exact_binomial_intervals_match_scipy():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 7.0, 9.0]
    est = C.unpaired(a, b, unit="direction")
    ref = stats.ttest_ind(b, a, equal_var=False).confidence_interval()
    assert est.value == pytest.approx(np.mean(b) - np.mean(a))
    assert est.ci == pytest.approx((ref.low, ref.high))
    share = C.proportion(9, 12, unit="model")
    ref = stats.binomtest(9, 12).proportion_ci(method="exact")
    assert share.value == 0.75 and share.ci == pytest.approx((ref.low, ref.high))


def test_bootstrap_interval_covers_the_statistic_and_is_reproducible():
    x = np.random.default_rng(0).normal(1.0, 1.0, 200)
    one = C.bootstrap(np.mean, [x], unit="image", resamples=500, seed=3)
    two = C.bootstrap(np.mean, [x], unit="image", resamples=500, seed=3)
    assert one.ci == two.ci and one.ci[0] < one.value < one.ci[1]
    assert one.method == "percentile bootstrap"


@pytest.mark.parametrize("values, direction, margin, verdict", [
    ([0.10, 0.12, 0.09, 0.11], "greater", 0.0, C.HELD),           # clear win
    ([-0.10, -0.12, -0.09, -0.11], "greater", 0.0, C.NOT_HELD),   # clear loss
    ([0.10, -0.08, 0.05, -0.02], "greater", 0.0, C.INCONCLUSIVE),  # straddles the margin
    ([-0.10, -0.12, -0.09, -0.11], "less", 0.0, C.HELD),           # the other direction
    ([0.030, 0.031, 0.029], "greater", 0.02, C.HELD),               # clears a non-zero margin
    ([0.010, 0.011, 0.009], "greater", 0.02, C.NOT_HELD),           # positive, but short of it
    ([-0.010, -0.011, -0.009], "greater", -0.02, C.HELD),           # a cost within its allowance
])
def test_verdicts_on_hand_made_cases(values, direction, margin, verdict):
    claim = C.decide("x", C.mean_ci(values), direction=direction, margin=margin)
    assert claim.verdict == verdict
    assert claim.held is (verdict == C.HELD)


def test_one_replicate_nan_and_unmeasurable_are_inconclusive():
    one = C.decide("x", C.mean_ci([0.5]), direction="greater", margin=0.0)
    assert one.verdict == C.INCONCLUSIVE and "no estimate of seed-to-seed noise" in one.note
    nan = C.decide("x", C.mean_ci([0.1, float("nan")]), direction="greater", margin=0.0)
    assert nan.verdict == C.INCONCLUSIVE and "could not be measured" in nan.note
    zero = C.decide("x", C.paired([0.0, 0.0], [0.0, 0.0]), direction="less", margin=0.0,
                    unmeasurable="no model has any robust accuracy")
    assert zero.verdict == C.INCONCLUSIVE and "no model has any robust accuracy" in zero.note
    empty = C.decide("x", C.proportion(0, 0, unit="error"), direction="greater", margin=0.0)
    assert empty.verdict == C.INCONCLUSIVE


def test_no_spread_decides_only_when_a_sign_test_would():
    assert C.fewest_without_spread(0.95) == 6                    # 0.5^6 < 0.025 <= 0.5^5
    few = C.decide("x", C.mean_ci([0.2] * 4), direction="greater", margin=0.1)
    assert few.verdict == C.INCONCLUSIVE and "agree exactly" in few.note
    many = C.mean_ci([0.2] * 6)
    assert many.ci[0] == many.ci[1] == pytest.approx(0.2) and "sign test" in many.method
    assert C.decide("x", many, direction="greater", margin=0.1).verdict == C.HELD
    assert C.unpaired([1, 1, 1], [2, 2, 2], unit="direction").ci is None


def test_less_than_a_non_zero_margin():
    est = C.mean_ci([0.05, 0.06, 0.055, 0.045])
    assert C.decide("x", est, direction="less", margin=0.1).verdict == C.HELD
    assert C.decide("x", est, direction="less", margin=0.01).verdict == C.NOT_HELD
    assert C.decide("x", est, direction="less", margin=0.05).verdict == C.INCONCLUSIVE


def test_bootstrap_of_two_independent_groups_and_of_a_statistic_that_breaks():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 80), rng.normal(1, 1, 60)
    est = C.bootstrap(lambda x, y: y.mean() - x.mean(), [a, b], unit="image", resamples=400, seed=0,
                      paired_samples=False)
    assert est.n == 140 and est.ci[0] < est.value < est.ci[1] and est.ci[0] > 0
    broken = C.bootstrap(lambda x: np.log(np.median(x)), [np.r_[np.zeros(30), np.ones(30)]], unit="image",
                         resamples=200, seed=0)
    claim = C.decide("x", broken, direction="greater", margin=0.0)
    assert claim.verdict == C.INCONCLUSIVE and "not finite" in claim.note
    nan = C.decide("x", C.mean_ci([0.1, float("nan"), 0.2]), direction="greater", margin=0.0)
    assert "1 of 3 seeds gave no finite value" in nan.note


def _claim(verdict):
    values = {C.HELD: [1.0, 1.1], C.NOT_HELD: [-1.0, -1.1], C.INCONCLUSIVE: [1.0, -1.0]}[verdict]
    return C.decide(verdict, C.mean_ci(values), direction="greater", margin=0.0)


@pytest.mark.parametrize("rule, verdicts, expected", [
    ("all", [C.HELD, C.HELD, C.HELD], C.HELD),
    ("all", [C.HELD, C.INCONCLUSIVE, C.HELD], C.INCONCLUSIVE),
    ("all", [C.HELD, C.NOT_HELD, C.INCONCLUSIVE], C.NOT_HELD),
    ("majority", [C.HELD, C.HELD, C.NOT_HELD], C.HELD),
    ("majority", [C.HELD, C.INCONCLUSIVE, C.NOT_HELD], C.INCONCLUSIVE),
    ("majority", [C.HELD, C.NOT_HELD, C.NOT_HELD], C.NOT_HELD),
    ("majority", [C.HELD, C.NOT_HELD], C.NOT_HELD),
    ("agree", [C.NOT_HELD, C.NOT_HELD], C.HELD),
    ("agree", [C.HELD, C.NOT_HELD], C.NOT_HELD),
    ("agree", [C.HELD, C.INCONCLUSIVE], C.INCONCLUSIVE),
    ("agree", [C.HELD, C.NOT_HELD, C.INCONCLUSIVE], C.NOT_HELD),     # disagreement is already known
])
def test_combination_rules(rule, verdicts, expected):
    parts = {f"task {i}": _claim(v) for i, v in enumerate(verdicts)}
    combined = C.combine("x", parts, rule=rule)
    assert combined.verdict == expected
    record = combined.to_record()
    assert [p["verdict"] for p in record["parts"]] == verdicts
    assert record["n"] == len(verdicts) and record["rule"] == rule


def test_a_combined_claim_needs_parts_and_a_known_rule():
    with pytest.raises(ValueError):
        C.combine("x", {})
    with pytest.raises(ValueError):
        C.combine("x", {"a": _claim(C.HELD)}, rule="most")


def test_the_record_keeps_verdicts_and_refuses_inconsistent_ones():
    rec = ResultsRecord("00", {"profile": "smoke", "seed": 0}, "cpu")
    rec.add_claim(C.combine("both", {"a": _claim(C.HELD), "b": _claim(C.INCONCLUSIVE)}))
    rec.add_claim(_claim(C.HELD))
    data = rec.save("")
    first, second = data["claims"]
    assert first["verdict"] == C.INCONCLUSIVE and first["held"] is False
    assert second["verdict"] == C.HELD and second["held"] is True and len(second["ci"]) == 2
    assert data["schema"] == 2
    bad = dict(data, claims=[dict(second, held=False)])
    with pytest.raises(ValueError, match="verdict"):
        validate_record(bad)


def test_rendering_has_no_float_noise_and_indents_parts():
    claim = C.combine("on every task", {"xor": C.decide("xor", C.mean_ci([1 / 6, 1 / 3, 1 / 4]),
                                                        direction="greater", margin=0.0,
                                                        evidence={"share": 1 / 6})})
    frame = C.claims_table([claim]).data
    assert list(frame["claim"]) == ["on every task", "· xor"]
    text = frame.to_string() + C.claims_markdown([claim], "07")
    assert "0.16666" not in text and "0.167" in text and "[+" in text
    records = [claim.to_record(), _claim(C.NOT_HELD).to_record(), _claim(C.INCONCLUSIVE).to_record()]
    assert C.tally(records) == "1 held, 1 not held, 1 inconclusive"
    assert C.fmt(float("nan")) == "–" and C.fmt(3) == "3"

