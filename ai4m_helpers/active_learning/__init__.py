"""Knowledge-driven active learning: a rule language compiled to product-t-norm violations,
strategies behind one interface (KAL and its variants, random, entropy, margin, least confidence,
BALD, core-set), and a batched warm-start loop."""
from .params import PARAMS
from .rules import InputPredicate, KnowledgeBase, P, RuleError, parse_rule

__all__ = ["PARAMS", "InputPredicate", "KnowledgeBase", "P", "RuleError", "parse_rule"]
