import pytest

from ai4m_helpers.params import Param, ParameterError, ParamSpec

SPEC = ParamSpec({
    "epochs": Param(int, 3, full=30, min=1, max=100),
    "rate": Param(float, 0.1, min=0.0, max=1.0),
    "mode": Param(str, "a", choices=("a", "b")),
    "flag": Param(bool, False),
})


def test_profile_fills_unset_values():
    assert SPEC.resolve()["epochs"] == 3
    assert SPEC.resolve(profile="full")["epochs"] == 30
    assert SPEC.resolve(profile="full", epochs=None)["epochs"] == 30   # None = the profile's value
    assert SPEC.resolve(profile="full", epochs=7)["epochs"] == 7
    assert SPEC.resolve()["device"] == "auto" and SPEC.resolve()["seed"] == 0


def test_unknown_name_is_refused_with_a_suggestion():
    with pytest.raises(ParameterError, match="unknown parameter 'epoch'.*did you mean 'epochs'"):
        SPEC.resolve(epoch=3)


@pytest.mark.parametrize("name,value,message", [
    ("epochs", 2.5, "expects int"),
    ("epochs", True, "expects int"),
    ("epochs", 0, ">= 1"),
    ("rate", 1.5, "<= 1.0"),
    ("mode", "c", "one of"),
    ("profile", "huge", "one of"),
    ("device", "gpu", "expected 'auto'"),
    ("seed", -1, ">= 0"),
])
def test_bad_values_are_refused(name, value, message):
    with pytest.raises(ParameterError, match=message):
        SPEC.resolve(**{name: value})


def test_int_is_accepted_for_float():
    assert SPEC.resolve(rate=1)["rate"] == 1.0 and isinstance(SPEC.resolve(rate=1)["rate"], float)


def test_text_from_the_command_line_is_converted():
    assert SPEC.coerce("epochs", "12") == 12
    assert SPEC.coerce("rate", "0.5") == 0.5
    assert SPEC.coerce("flag", "true") is True and SPEC.coerce("flag", "0") is False
    assert SPEC.coerce("mode", "b") == "b"
    with pytest.raises(ParameterError, match="expects int, got 'ten'"):
        SPEC.coerce("epochs", "ten")
    with pytest.raises(ParameterError, match="expects bool"):
        SPEC.coerce("flag", "maybe")


def test_resolve_from_a_namespace_takes_only_known_names():
    values = SPEC.resolve_from({"epochs": 5, "np": object(), "profile": "smoke"})
    assert values["epochs"] == 5


def test_common_names_cannot_be_redefined():
    with pytest.raises(ValueError):
        ParamSpec({"seed": Param(int, 1)})


def test_joint_checks_see_the_resolved_values():
    spec = ParamSpec({"a": Param(int, 1), "b": Param(int, 1)},
                     joint_checks=[lambda v: "a + b must stay below 5" if v["a"] + v["b"] >= 5 else None])
    assert spec.resolve(a=3)["a"] == 3
    with pytest.raises(ParameterError, match="a \\+ b must stay below 5"):
        spec.resolve(a=2, b=3)


def test_chapter_01_refuses_splits_that_leave_no_test_set():
    from ai4m_helpers.robustness import PARAMS

    with pytest.raises(ParameterError, match="test split"):
        PARAMS.resolve(n_train=1000, n_val=1000)
    with pytest.raises(ParameterError, match="apgd_size"):
        PARAMS.resolve(n_train=1000, n_val=500, apgd_size=797)
    assert PARAMS.resolve(profile="full")["apgd_size"] == 797


LISTS = ParamSpec({
    "cuts": Param(list, [0.3, 0.5], item=float, min=0.0, max=1.0, min_items=2),
    "tasks": Param(list, ["a", "b"], item=str, choices=("a", "b", "c")),
})


def test_list_parameters_take_lists_or_comma_text_and_check_every_item():
    assert LISTS.resolve()["cuts"] == [0.3, 0.5]
    assert LISTS.resolve(cuts=[0, 1])["cuts"] == [0.0, 1.0]            # ints become floats
    assert LISTS.coerce("cuts", "0.2, 0.4,0.6") == [0.2, 0.4, 0.6]
    assert LISTS.coerce("tasks", "c,a") == ["c", "a"]
    assert LISTS.coerce("cuts", "[0.2, 0.4]") == [0.2, 0.4] and LISTS.coerce("tasks", "['c']") == ["c"]
    for value, message in [([0.5], "at least 2"), ([0.5, 1.5], "<= 1.0"), ("0.2,0.4", "expects a list"),
                           ([0.1, "x"], "expects float"), ([0.1, float("nan")], "NaN")]:
        with pytest.raises(ParameterError, match=message):
            LISTS.resolve(cuts=value)
    with pytest.raises(ParameterError, match="one of"):
        LISTS.resolve(tasks=["a", "d"])
    with pytest.raises(ParameterError, match="expects float, got 'x'"):
        LISTS.coerce("cuts", "0.1,x")
    assert LISTS.params["cuts"].describe() == "list of float, at least 2 items, each >= 0.0, <= 1.0"


def test_nan_is_refused_for_every_float():
    with pytest.raises(ParameterError, match="NaN"):
        SPEC.resolve(rate=float("nan"))
    with pytest.raises(ParameterError, match="NaN"):
        SPEC.check_value("rate", SPEC.coerce("rate", "nan"))
