import pytest

from ai4m_helpers.stats import mean_se, noise_note


def test_mean_and_standard_error():
    mean, se = mean_se([1.0, 2.0, 3.0])
    assert mean == 2.0 and se == pytest.approx(1 / 3 ** 0.5)
    assert mean_se([0.5]) == (0.5, None)


def test_noise_note_names_the_unit_and_stays_silent_on_clear_differences():
    assert noise_note(0.1, None, 1, unit="zoo") == "one zoo: no estimate of zoo-to-zoo noise"
    assert "within two standard errors" in noise_note(0.1, 0.06, 3)
    assert noise_note(0.1, 0.04, 3) == ""
