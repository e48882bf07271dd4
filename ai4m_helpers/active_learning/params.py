"""Chapter 7's knobs. Kept free of heavy imports: `ai4m list` and the runner read it."""
from __future__ import annotations

from ..params import Param, ParamSpec

TASKS = ("xor", "iris", "digits")


N_RULES = {"xor": 2, "iris": 4, "digits": 15}   # the rules of each task, numbered from 1


def _check_rule_names(names: list[str]) -> str | None:
    for name in names:
        task, _, number = name.partition(":")
        if task not in TASKS or not number.isdigit() or not 1 <= int(number) <= N_RULES[task]:
            return (f"expected 'task:number' with task one of {', '.join(TASKS)} and a rule number "
                    f"of that task ({', '.join(f'{t} 1-{n}' for t, n in N_RULES.items())}), got {name!r}")
    return None


PARAMS = ParamSpec({
    "tasks": Param(list, list(TASKS), item=str, choices=TASKS, help="which tasks to run"),
    "seeds": Param(int, 3, full=10, min=1, max=64, help="seeds (initial labels and weights) per strategy"),
    "xor_pool": Param(int, 2000, full=20000, min=200, max=200000, help="unlabelled XOR points"),
    "xor_test": Param(int, 1000, full=5000, min=100, max=100000, help="XOR test points"),
    "xor_rounds": Param(int, 12, full=38, min=1, max=200, help="rounds on XOR (+5 labels each)"),
    "iris_rounds": Param(int, 10, full=14, min=1, max=18, help="rounds on Iris (+5 labels each)"),
    "digits_rounds": Param(int, 8, full=19, min=1, max=100, help="rounds on digits (+10 labels each)"),
    "hidden": Param(int, 64, full=200, min=4, max=4096, help="hidden units of the MLP"),
    "epochs": Param(int, 100, full=250, min=1, max=5000, help="training epochs per round (warm start)"),
    "lr": Param(float, 5e-3, full=1e-3, min=1e-6, max=1.0, help="AdamW learning rate"),
    "kal_mu": Param(float, 1.0, min=0.0, max=100.0, help="weight μ of KAL's uncertainty term"),
    "mc_passes": Param(int, 5, min=2, max=100, help="MC-dropout passes for BALD"),
    "xor_threshold": Param(float, 0.5, min=0.05, max=0.95,
                           help="where the expert's XOR rules put the boundary (0.5 is right)"),
    "drop_rules": Param(list, [], item=str, min_items=0, check=_check_rule_names,
                        help="rules left out, as 'task:number' (numbers as in the rule table)"),
    "rules_loss_weight": Param(float, 1.0, min=0.0, max=100.0,
                               help="weight of the rules as a training loss (rules-as-loss baseline)"),
})
