"""A safe evaluator for Countdown equations: own tokenizer + recursive-descent parser, no eval.

Grammar: expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
factor := INT | '(' expr ')' | '-' factor (only when `allow_unary_minus`). Integer literals only
(at most `MAX_DIGITS` digits); no names, no '**', no calls. Lexing is as strict as TinyZero's
scorer (whose `eval` is Python's tokenizer): ASCII digits 0-9 only (no Arabic-Indic or fullwidth
digits), no leading zeros ("044"; "0" and "00" are zero), and only spaces, tabs and form feeds
between tokens (no line breaks, no other Unicode spaces); whitespace at either end is stripped.
Arithmetic is exact
(`fractions.Fraction`). Input length and nesting depth are bounded, so any string, however
hostile, is rejected or evaluated in time linear in its (bounded) length. It does not know about
targets or which numbers are allowed: `check_equation` in `countdown.task` does that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

MAX_CHARS = 512
MAX_DEPTH = 32
MAX_DIGITS = 9
_TOKEN = re.compile(r"[ \t\f]*(?:([0-9]+)|([-+*/()]))")


class EquationError(ValueError):
    """The text is not a well-formed equation (or divides by zero)."""


@dataclass
class Evaluation:
    """The exact value of an equation and the integer literals it uses, in order."""

    value: Fraction
    numbers: list[int] = field(default_factory=list)


def tokenize(text: str) -> list[str]:
    """Split into integer and operator tokens; anything else is an EquationError.

    >>> tokenize("(1 + 23)*4")
    ['(', '1', '+', '23', ')', '*', '4']
    >>> tokenize("٤٤ + 1")
    Traceback (most recent call last):
    ...
    selfimprove.tasks.countdown.equation.EquationError: unexpected character '٤' at 0
    """
    if len(text) > MAX_CHARS:
        raise EquationError(f"equation longer than {MAX_CHARS} characters")
    tokens, position, stripped = [], 0, text.strip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:
            raise EquationError(f"unexpected character {stripped[position:position + 1]!r} at {position}")
        if match.group(1) and match.group(1)[0] == "0" and match.group(1).strip("0"):
            raise EquationError(f"number with a leading zero {match.group(1)!r} at {match.start(1)}")
        tokens.append(match.group(1) or match.group(2))
        position = match.end()
    if not tokens:
        raise EquationError("empty equation")
    return tokens


def evaluate_equation(text: str, allow_unary_minus: bool = True) -> Evaluation:
    """Parse and evaluate exactly.

    >>> evaluate_equation("(76 - 47 + 55) - 60").value
    Fraction(24, 1)
    >>> evaluate_equation("6 / 4").value
    Fraction(3, 2)
    >>> evaluate_equation("__import__('os')")
    Traceback (most recent call last):
    ...
    selfimprove.tasks.countdown.equation.EquationError: unexpected character '_' at 0
    """
    parser = _Parser(tokenize(text), allow_unary_minus)
    value = parser.expression(0)
    if parser.position != len(parser.tokens):
        raise EquationError(f"unexpected {parser.tokens[parser.position]!r} after a complete expression")
    return Evaluation(value, parser.numbers)


class _Parser:
    def __init__(self, tokens: list[str], allow_unary_minus: bool):
        self.tokens, self.position, self.numbers = tokens, 0, []
        self.allow_unary_minus = allow_unary_minus

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise EquationError("equation ends too early")
        self.position += 1
        return token

    def expression(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            value = value + self.term(depth) if self.take() == "+" else value - self.term(depth)
        return value

    def term(self, depth: int) -> Fraction:
        value = self.factor(depth)
        while self.peek() in ("*", "/"):
            operator, right = self.take(), self.factor(depth)
            if operator == "*":
                value *= right
            elif right == 0:
                raise EquationError("division by zero")
            else:
                value /= right
        return value

    def factor(self, depth: int) -> Fraction:
        if depth > MAX_DEPTH:
            raise EquationError(f"nested deeper than {MAX_DEPTH}")
        token = self.take()
        if token == "(":
            value = self.expression(depth + 1)
            if self.take() != ")":
                raise EquationError("missing ')'")
            return value
        if token == "-" and self.allow_unary_minus:
            return -self.factor(depth + 1)
        if token.isdigit():
            return self.literal(token)
        raise EquationError(f"unexpected {token!r}")

    def literal(self, token: str) -> Fraction:
        if len(token) > MAX_DIGITS:
            raise EquationError(f"number with more than {MAX_DIGITS} digits")
        self.numbers.append(int(token))
        return Fraction(int(token))
