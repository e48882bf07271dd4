"""A small rule language over named predicates, compiled to fuzzy-logic violations.

Rules are written as text ("long_petal and not wide_petal <-> versicolor") or built from Python
objects (``P("a") >> P("b")``). Both give the same expression tree, evaluated with the product
t-norm (Ciravegna et al. 2023):

    not a = 1 - a        a and b = a * b        a or b = 1 - (1 - a)(1 - b)
    a -> b = 1 - a (1 - b)        a <-> b = (a -> b)(b -> a)

A rule's violation is one minus its truth degree. Predicates are the model's sigmoid outputs and
input predicates: steep sigmoids of an input feature at a threshold known to the expert.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Sequence

import torch


class RuleError(ValueError):
    """A rule is malformed or names a predicate that does not exist."""


# -- the expression tree ----------------------------------------------------------------------
class Expr:
    def truth(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def names(self) -> set[str]:
        raise NotImplementedError

    def __invert__(self):
        return Not(self)

    def __and__(self, other):
        return And(self, other)

    def __or__(self, other):
        return Or(self, other)

    def __rshift__(self, other):  # a >> b reads "a implies b"
        return Implies(self, other)

    def iff(self, other):
        return Iff(self, other)


@dataclasses.dataclass(frozen=True)
class P(Expr):
    """A named predicate."""

    name: str

    def truth(self, values):
        return values[self.name]

    def names(self):
        return {self.name}

    def __str__(self):
        return self.name


@dataclasses.dataclass(frozen=True)
class Not(Expr):
    a: Expr

    def truth(self, values):
        return 1 - self.a.truth(values)

    def names(self):
        return self.a.names()

    def __str__(self):
        return f"not {_wrap(self.a)}"


@dataclasses.dataclass(frozen=True)
class _Binary(Expr):
    a: Expr
    b: Expr
    symbol = "?"

    def names(self):
        return self.a.names() | self.b.names()

    def __str__(self):
        return f"{self._side(self.a)} {self.symbol} {self._side(self.b)}"

    def _side(self, e: Expr) -> str:
        # "a and b and c" needs no brackets: and / or are associative.
        if type(e) is type(self) and isinstance(self, (And, Or)):
            return str(e)
        return _wrap(e)


class And(_Binary):
    symbol = "and"

    def truth(self, values):
        return self.a.truth(values) * self.b.truth(values)


class Or(_Binary):
    symbol = "or"

    def truth(self, values):
        return 1 - (1 - self.a.truth(values)) * (1 - self.b.truth(values))


class Implies(_Binary):
    symbol = "->"

    def truth(self, values):
        return 1 - self.a.truth(values) * (1 - self.b.truth(values))


class Iff(_Binary):
    symbol = "<->"

    def truth(self, values):
        a, b = self.a.truth(values), self.b.truth(values)
        return (1 - a * (1 - b)) * (1 - b * (1 - a))


@dataclasses.dataclass(frozen=True)
class AtLeastOne(Expr):
    args: tuple

    def truth(self, values):
        none = 1
        for arg in self.args:
            none = none * (1 - arg.truth(values))
        return 1 - none

    def names(self):
        return set().union(*(a.names() for a in self.args))

    def __str__(self):
        return f"at_least_one({', '.join(map(str, self.args))})"


@dataclasses.dataclass(frozen=True)
class ExactlyOne(Expr):
    """At least one holds, and no two hold together."""

    args: tuple

    def truth(self, values):
        truth = AtLeastOne(self.args).truth(values)
        t = [a.truth(values) for a in self.args]
        for i in range(len(t)):
            for j in range(i + 1, len(t)):
                truth = truth * (1 - t[i] * t[j])
        return truth

    def names(self):
        return set().union(*(a.names() for a in self.args))

    def __str__(self):
        return f"exactly_one({', '.join(map(str, self.args))})"


def _wrap(e: Expr) -> str:
    return str(e) if isinstance(e, (P, Not, AtLeastOne, ExactlyOne)) else f"({e})"


# -- the parser -------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(<->|<=>|->|=>|⇔|⇒|¬|∧|∨|~|&|\||\(|\)|,|[A-Za-z_][A-Za-z_0-9]*|\S)")
_WORDS = {"not": "not", "¬": "not", "~": "not", "and": "and", "∧": "and", "&": "and",
          "or": "or", "∨": "or", "|": "or", "->": "->", "=>": "->", "⇒": "->", "implies": "->",
          "<->": "<->", "<=>": "<->", "⇔": "<->", "iff": "<->"}
_FUNCTIONS = {"exactly_one": ExactlyOne, "at_least_one": AtLeastOne}


class _Parser:
    """Recursive descent; binding from loose to tight: <->, ->, or, and, not."""

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or not m.group(1):
                break
            self.tokens.append((_WORDS.get(m.group(1), m.group(1)), m.start(1)))
            pos = m.end()
        self.i = 0

    def fail(self, message: str):
        where = self.tokens[self.i][1] if self.i < len(self.tokens) else len(self.text)
        raise RuleError(f"{message} at position {where} in rule {self.text!r}")

    def peek(self):
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self, expected=None):
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            self.fail(f"expected {expected or 'more'!r}, found {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> Expr:
        if not self.tokens:
            raise RuleError("empty rule")
        expr = self.iff()
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()!r}")
        return expr

    def iff(self):
        return self._chain("<->", Iff, self.implies)

    def implies(self):
        left = self.disjunction()
        if self.peek() == "->":  # right-associative: a -> b -> c is a -> (b -> c)
            self.take()
            return Implies(left, self.implies())
        return left

    def _chain(self, word: str, node, operand):
        """Left-associative chain of one connective: a op b op c."""
        left = operand()
        while self.peek() == word:
            self.take()
            left = node(left, operand())
        return left

    def disjunction(self):
        return self._chain("or", Or, self.conjunction)

    def conjunction(self):
        return self._chain("and", And, self.negation)

    def negation(self):
        if self.peek() == "not":
            self.take()
            return Not(self.negation())
        return self.atom()

    def atom(self):
        tok = self.peek()
        if tok == "(":
            self.take()
            inner = self.iff()
            self.take(")")
            return inner
        if tok is None or not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", tok) or tok in _WORDS:
            self.fail(f"expected a predicate name or '(', found {tok!r}")
        self.take()
        if tok in _FUNCTIONS:
            self.take("(")
            args = [self.iff()]
            while self.peek() == ",":
                self.take()
                args.append(self.iff())
            self.take(")")
            return _FUNCTIONS[tok](tuple(args))
        return P(tok)


def parse_rule(text: str) -> Expr:
    """Parse one rule written in text; raises RuleError with the position of the problem."""
    return _Parser(text).parse()


# -- predicates from inputs, and the knowledge base --------------------------------------------
@dataclasses.dataclass(frozen=True)
class InputPredicate:
    """x[feature] > threshold, softened: 1 / (1 + exp(-k (x - threshold))), k = 100 as in KAL."""

    name: str
    feature: int
    threshold: float
    steepness: float = 100.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.steepness * (x[..., self.feature] - self.threshold))


class KnowledgeBase:
    """Rules over output predicates (the model's sigmoid outputs) and input predicates."""

    def __init__(self, rules: Sequence[str | Expr], outputs: Sequence[str],
                 inputs: Sequence[InputPredicate] = ()):
        self.outputs = list(outputs)
        self.inputs = list(inputs)
        known = set(self.outputs) | {p.name for p in self.inputs}
        if len(known) != len(self.outputs) + len(self.inputs):
            raise RuleError("predicate names must be unique")
        self.rules = [parse_rule(r) if isinstance(r, str) else r for r in rules]
        self.texts = [r if isinstance(r, str) else str(r) for r in rules]
        for text, rule in zip(self.texts, self.rules):
            unknown = sorted(rule.names() - known)
            if unknown:
                raise RuleError(f"rule {text!r} uses unknown predicate(s) {unknown}; "
                                f"known: {sorted(known)}")

    def values(self, x: torch.Tensor, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Truth values of every predicate; outputs (..., n_outputs) in [0, 1]."""
        vals = {name: outputs[..., i] for i, name in enumerate(self.outputs)}
        vals.update({p.name: p(x).expand(outputs.shape[:-1]) for p in self.inputs})
        return vals

    def violations(self, x: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """Violation 1 - truth of every rule: (..., n_rules)."""
        vals = self.values(x, outputs)
        return torch.stack([1 - rule.truth(vals) for rule in self.rules], -1)

    def subset(self, keep: Sequence[int]) -> "KnowledgeBase":
        """The same predicates with only some rules (partial knowledge)."""
        return KnowledgeBase([self.rules[i] for i in keep], self.outputs, self.inputs)

    def __len__(self):
        return len(self.rules)
