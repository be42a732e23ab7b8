"""The rule language: tokenizer, recursive-descent parser, type checker and translation to Spark columns.

Rule text is untrusted input, so it never reaches Spark SQL as text. The parser
builds a small syntax tree, and the checker accepts only columns of the data set
and literals of matching types. `to_column` then builds the Spark expression
from `F.col`, `F.lit`, Column operators and the `try_*` arithmetic functions
alone. The language has no function calls, subqueries, table names, comments or
quoted identifiers, so none of them can reach Spark. docs/rules.md lists what
is rejected and why, with examples.

    condition      := or_expr
    or_expr        := and_expr ("or" and_expr)*
    and_expr       := not_expr ("and" not_expr)*
    not_expr       := "not" not_expr | predicate
    predicate      := value [ compare_op value
                            | ["not"] "between" value "and" value
                            | ["not"] "in" "(" literal ("," literal)* ")"
                            | "is" ["not"] "null" ]
    value          := term (("+" | "-") term)*
    term           := unary (("*" | "/") unary)*
    unary          := "-" unary | primary
    primary        := number | string | "true" | "false" | "date" string
                    | "timestamp" string | column | "(" or_expr ")"
    compare_op     := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Mapping, Optional, Union

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from stratify_spark.errors import ConfigError

MAX_TEXT_LENGTH = 2000
MAX_DEPTH = 40
MAX_DECIMAL_DIGITS = 38
MAX_INTEGER = 2**63 - 1

NUMBER, STRING, BOOLEAN, DATE, TIMESTAMP = "number", "string", "boolean", "date", "timestamp"
ORDERED_TYPES = (NUMBER, STRING, DATE, TIMESTAMP)

KEYWORDS = frozenset({"and", "or", "not", "between", "in", "is", "null", "true", "false", "date", "timestamp"})
COMPARE_OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_DATE_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", re.ASCII)
_TIMESTAMP_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?$", re.ASCII)
_TWO_CHARACTER_OPERATORS = ("<=", ">=", "<>", "!=", "==")
_ONE_CHARACTER_OPERATORS = "=<>+-*/"
_COLUMN_HINT = "write a column name of the data set, a literal or '('"


class RuleError(ConfigError):
    """Error for invalid rule or expression text, with its location, 1-based character position and fix."""

    def __init__(self, where: str, text: str, offset: int, problem: str, fix: str) -> None:
        self.where = where
        self.text = text
        self.position = offset + 1
        self.problem = problem
        self.fix = fix
        super().__init__(f"{where}: {problem} at position {self.position}; {fix}\n{_pointer(text, offset)}")


def _pointer(text: str, offset: int) -> str:
    """Return the line of `text` that contains `offset` and a caret under that character."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    line = text[start:] if end < 0 else text[start:end]
    return f"    {line}\n    {' ' * (offset - start)}^"


# Types of columns, from declared config types and from Spark schemas.

def type_category(declared_type: str) -> Optional[str]:
    """Return the rule-language type of a config column type such as 'decimal(10,2)', or None."""
    if declared_type in ("integer", "long", "double") or declared_type.startswith("decimal("):
        return NUMBER
    return {"string": STRING, "boolean": BOOLEAN, "date": DATE, "timestamp": TIMESTAMP}.get(declared_type)


def spark_type_category(data_type: T.DataType) -> Optional[str]:
    """Return the rule-language type of a Spark column type, or None when rules cannot use it."""
    if isinstance(data_type, T.NumericType):
        return NUMBER
    if isinstance(data_type, T.StringType):
        return STRING
    if isinstance(data_type, T.BooleanType):
        return BOOLEAN
    if isinstance(data_type, T.DateType):
        return DATE
    if isinstance(data_type, (T.TimestampType, T.TimestampNTZType)):
        return TIMESTAMP
    return None


# Tokens.

@dataclass(frozen=True)
class Token:
    """One token: its kind, its text (keywords in lowercase) and its 0-based offset in the rule text."""

    kind: str
    text: str
    offset: int


def tokenize(text: str, where: str) -> list[Token]:
    """Split rule text into tokens. Raises RuleError on any character the language does not use."""
    if not isinstance(text, str):
        raise RuleError(where, str(text), 0, f"expected rule text, got {type(text).__name__}", "quote the rule as a string")
    if not text.strip():
        raise RuleError(where, text, 0, "the rule is empty", "write a condition such as monetary > 1000")
    if len(text) > MAX_TEXT_LENGTH:
        raise RuleError(where, text[:80], 0, f"the rule has {len(text)} characters",
                        f"keep it under {MAX_TEXT_LENGTH} characters, or split it into several segments")

    tokens: list[Token] = []
    offset = 0
    while offset < len(text):
        character = text[offset]
        following = text[offset:offset + 2]
        if character in " \t\r\n":
            offset += 1
            continue

        if not character.isascii():
            raise RuleError(where, text, offset, f"character {character!r} (U+{ord(character):04X}) is not allowed "
                            "outside a string literal", "retype it with ASCII letters, digits and operators")
        identifier = _IDENTIFIER.match(text, offset)
        if identifier:
            word = identifier.group()
            kind = "keyword" if word.lower() in KEYWORDS else "identifier"
            tokens.append(Token(kind, word.lower() if kind == "keyword" else word, offset))
            offset = identifier.end()
            continue
        number = _NUMBER.match(text, offset)
        if number:
            end = number.end()
            if end < len(text) and (text[end].isalnum() or text[end] in "_."):
                bad_end = end
                while bad_end < len(text) and (text[bad_end].isalnum() or text[bad_end] in "_."):
                    bad_end += 1
                raise RuleError(where, text, offset, f"invalid number {text[offset:bad_end]!r}",
                                "write numbers as digits with an optional decimal part, such as 1000 or 12.5")
            tokens.append(Token("number", number.group(), offset))
            offset = end
            continue
        if character == "'":
            value, end = _read_string(text, offset, where)
            tokens.append(Token("string", value, offset))
            offset = end
            continue

        if following in ("--", "/*"):
            raise RuleError(where, text, offset, f"comment marker {following!r} is not allowed",
                            "remove it; rules have no comments (put notes in the YAML file with #)")
        if following in _TWO_CHARACTER_OPERATORS:
            tokens.append(Token("operator", following, offset))
            offset += 2
            continue
        if character in _ONE_CHARACTER_OPERATORS:
            tokens.append(Token("operator", character, offset))
            offset += 1
            continue
        if character in "(),":
            tokens.append(Token(character, character, offset))
            offset += 1
            continue
        raise RuleError(where, text, offset, *_unexpected_character(character))
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unexpected_character(character: str) -> tuple[str, str]:
    problems = {
        ";": ("';' is not allowed", "a rule is one condition; remove the ';' and anything after it"),
        "`": ("backtick is not allowed", "write column names without quotes, for example monetary"),
        '"': ("double quote is not allowed", "write string literals in single quotes, for example country = 'France'"),
        ".": ("'.' is not allowed here", "write plain column names of this data set (no table.column) and numbers "
                                         "with digits on both sides of the point, such as 0.5"),
    }
    return problems.get(character, (f"character {character!r} is not allowed",
                                    "use only column names, literals, comparison and arithmetic operators, "
                                    "parentheses and the keywords listed in docs/rules.md"))


def _read_string(text: str, offset: int, where: str) -> tuple[str, int]:
    """Return the value of the single-quoted string that starts at `offset`, and the offset after it."""
    characters: list[str] = []
    position = offset + 1
    while position < len(text):
        character = text[position]
        if character == "'":
            if text[position + 1:position + 2] == "'":
                characters.append("'")
                position += 2
                continue
            return "".join(characters), position + 1
        category = unicodedata.category(character)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise RuleError(where, text, position, f"invisible or control character U+{ord(character):04X} inside a "
                            "string", "remove it; strings may hold printable characters only")
        characters.append(character)
        position += 1
    raise RuleError(where, text, offset, "string literal is not closed", "end it with a single quote; write '' for a "
                    "quote inside the string")


# Syntax tree.

@dataclass(frozen=True)
class Literal:
    value: Union[int, Decimal, str, bool, dt.date, dt.datetime]
    type: str
    offset: int


@dataclass(frozen=True)
class ColumnRef:
    name: str
    offset: int


@dataclass(frozen=True)
class Negate:
    operand: "Node"
    offset: int


@dataclass(frozen=True)
class Arithmetic:
    operator: str
    left: "Node"
    right: "Node"
    offset: int


@dataclass(frozen=True)
class Compare:
    operator: str
    left: "Node"
    right: "Node"
    offset: int


@dataclass(frozen=True)
class Between:
    operand: "Node"
    low: "Node"
    high: "Node"
    negated: bool
    offset: int


@dataclass(frozen=True)
class InList:
    operand: "Node"
    values: tuple[Literal, ...]
    negated: bool
    offset: int


@dataclass(frozen=True)
class IsNull:
    operand: "Node"
    negated: bool
    offset: int


@dataclass(frozen=True)
class Not:
    operand: "Node"
    offset: int


@dataclass(frozen=True)
class Logical:
    operator: str
    left: "Node"
    right: "Node"
    offset: int


Node = Union[Literal, ColumnRef, Negate, Arithmetic, Compare, Between, InList, IsNull, Not, Logical]


class _Parser:
    """Recursive-descent parser over the token list, with one method per grammar rule."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self.tokens = tokenize(text, where)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def is_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.text in words

    def fail(self, token: Token, problem: str, fix: str) -> RuleError:
        return RuleError(self.where, self.text, token.offset, problem, fix)

    def describe(self, token: Token) -> str:
        if token.kind == "end":
            return "the end of the rule"
        if token.kind == "string":
            return f"string '{token.text}'"
        return f"{token.text!r}"

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(token, f"the rule nests more than {MAX_DEPTH} levels of parentheses or 'not'",
                            "simplify the condition")

    def parse(self) -> Node:
        node = self.or_expr()
        token = self.current
        if token.kind == "end":
            return node
        if token.kind == ")":
            raise self.fail(token, "')' has no matching '('", "remove it or add the '(' it closes")
        if token.kind == "operator" and token.text in COMPARE_OPERATORS:
            raise self.fail(token, f"a second comparison operator {token.text!r} follows a comparison",
                            "join comparisons with 'and', for example 1 <= x and x <= 5, or use between")
        raise self.fail(token, f"unexpected {self.describe(token)} after a complete condition",
                        "join conditions with 'and' or 'or'")

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.is_keyword("or"):
            token = self.advance()
            node = Logical("or", node, self.and_expr(), token.offset)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.is_keyword("and"):
            token = self.advance()
            node = Logical("and", node, self.not_expr(), token.offset)
        return node

    def not_expr(self) -> Node:
        if self.is_keyword("not"):
            token = self.advance()
            self.enter(token)
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand, token.offset)
        return self.predicate()

    def predicate(self) -> Node:
        left = self.value()
        token = self.current
        if token.kind == "operator" and token.text in COMPARE_OPERATORS:
            self.advance()
            return Compare(COMPARE_OPERATORS[token.text], left, self.value(), token.offset)

        negated = False
        if self.is_keyword("not") and self.tokens[self.index + 1].text in ("between", "in"):
            negated = True
            self.advance()
        if self.is_keyword("between"):
            between = self.advance()
            low = self.value()
            if not self.is_keyword("and"):
                raise self.fail(self.current, f"expected 'and' between the bounds of 'between', found "
                                f"{self.describe(self.current)}", "write x between 10 and 20")
            self.advance()
            return Between(left, low, self.value(), negated, between.offset)
        if self.is_keyword("in"):
            return self.in_list(left, negated)
        if negated:
            raise self.fail(token, "'not' here must be followed by 'between' or 'in'", "write x not in (1, 2)")
        if self.is_keyword("is"):
            self.advance()
            is_not = False
            if self.is_keyword("not"):
                self.advance()
                is_not = True
            if not self.is_keyword("null"):
                raise self.fail(self.current, f"expected 'null' after 'is', found {self.describe(self.current)}",
                                "write x is null or x is not null")
            self.advance()
            return IsNull(left, is_not, token.offset)
        return left

    def in_list(self, operand: Node, negated: bool) -> Node:
        keyword = self.advance()
        if self.current.kind != "(":
            raise self.fail(self.current, f"expected '(' after 'in', found {self.describe(self.current)}",
                            "write x in ('a', 'b')")
        self.advance()
        values = [self.literal_item()]
        while self.current.kind == ",":
            self.advance()
            values.append(self.literal_item())
        if self.current.kind != ")":
            raise self.fail(self.current, f"expected ',' or ')' in the list of 'in', found "
                            f"{self.describe(self.current)}", "separate the values with commas and close with ')'")
        self.advance()
        return InList(operand, tuple(values), negated, keyword.offset)

    def literal_item(self) -> Literal:
        token = self.current
        if token.kind == "operator" and token.text == "-" and self.tokens[self.index + 1].kind == "number":
            self.advance()
            number = self.primary()
            return Literal(-number.value, NUMBER, token.offset)
        if token.kind in ("number", "string") or self.is_keyword("true", "false", "date", "timestamp"):
            return self.primary()
        raise self.fail(token, f"the values of 'in' must be literals, found {self.describe(token)}",
                        "list numbers, quoted strings, true/false or date '...' literals")

    def value(self) -> Node:
        node = self.term()
        while self.current.kind == "operator" and self.current.text in "+-":
            token = self.advance()
            node = Arithmetic(token.text, node, self.term(), token.offset)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.current.kind == "operator" and self.current.text in "*/":
            token = self.advance()
            node = Arithmetic(token.text, node, self.unary(), token.offset)
        return node

    def unary(self) -> Node:
        if self.current.kind == "operator" and self.current.text == "-":
            token = self.advance()
            self.enter(token)
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, Literal) and operand.type == NUMBER:
                return Literal(-operand.value, NUMBER, token.offset)
            return Negate(operand, token.offset)
        return self.primary()

    def primary(self) -> Node:
        token = self.advance()
        if token.kind == "number":
            return Literal(self.number_value(token), NUMBER, token.offset)
        if token.kind == "string":
            return Literal(token.text, STRING, token.offset)
        if token.kind == "keyword":
            if token.text in ("true", "false"):
                return Literal(token.text == "true", BOOLEAN, token.offset)
            if token.text in ("date", "timestamp"):
                return self.typed_literal(token)
            if token.text == "null":
                raise self.fail(token, "null is not a value", "test for missing values with x is null or "
                                "x is not null")
            raise self.fail(token, f"keyword {token.text!r} cannot start a value", _COLUMN_HINT)
        if token.kind == "identifier":
            if self.current.kind == "(":
                raise self.fail(token, f"function call {token.text}(...) is not allowed",
                                "compare columns with literals; rules have no functions")
            return ColumnRef(token.text, token.offset)
        if token.kind == "(":
            self.enter(token)
            node = self.or_expr()
            self.depth -= 1
            if self.current.kind != ")":
                closing = self.current
                raise self.fail(closing, f"expected ')' to close the '(' at position {token.offset + 1}, found "
                                f"{self.describe(closing)}", "add the missing ')'")
            self.advance()
            return node
        if token.kind == "end":
            raise self.fail(token, "the rule ends where a value is expected", _COLUMN_HINT)
        raise self.fail(token, f"unexpected {self.describe(token)} where a value is expected", _COLUMN_HINT)

    def number_value(self, token: Token) -> Union[int, Decimal]:
        digits = token.text.replace(".", "")
        if len(digits.lstrip("0")) > MAX_DECIMAL_DIGITS:
            raise self.fail(token, f"number {token.text} has more than {MAX_DECIMAL_DIGITS} digits",
                            "use a shorter number")
        if "." in token.text:
            return Decimal(token.text)
        value = int(token.text)
        if value > MAX_INTEGER:
            raise self.fail(token, f"integer {token.text} is larger than {MAX_INTEGER}",
                            "write it with a decimal point, for example 1e20 as 100000000000000000000.0")
        return value

    def typed_literal(self, keyword: Token) -> Literal:
        token = self.current
        if token.kind != "string":
            raise self.fail(token, f"expected a quoted value after {keyword.text!r}, found {self.describe(token)}",
                            f"write {keyword.text} '2011-12-31'" + (" 23:59:00'" if keyword.text == "timestamp" else ""))
        self.advance()
        try:
            if keyword.text == "date":
                if not _DATE_TEXT.match(token.text):
                    raise ValueError
                return Literal(dt.date.fromisoformat(token.text), DATE, keyword.offset)
            if not _TIMESTAMP_TEXT.match(token.text):
                raise ValueError
            return Literal(dt.datetime.fromisoformat(token.text.replace("T", " ")), TIMESTAMP, keyword.offset)
        except ValueError:
            example = "date '2011-12-31'" if keyword.text == "date" else "timestamp '2011-12-31 23:59:00'"
            raise self.fail(token, f"{keyword.text} '{token.text}' is not a valid {keyword.text}",
                            f"write it as {example}") from None


def parse(text: str, where: str) -> Node:
    """Parse rule text into a syntax tree. Raises RuleError at the position of the first syntax error."""
    return _Parser(text, where).parse()


# Type checking.

class _Checker:
    def __init__(self, text: str, where: str, column_types: Mapping[str, str]) -> None:
        self.text = text
        self.where = where
        self.column_types = column_types

    def fail(self, node: Node, problem: str, fix: str) -> RuleError:
        return RuleError(self.where, self.text, node.offset, problem, fix)

    def type_of(self, node: Node) -> str:
        if isinstance(node, Literal):
            return node.type
        if isinstance(node, ColumnRef):
            return self.column_type(node)
        if isinstance(node, Negate):
            self.expect(node.operand, NUMBER, "'-'")
            return NUMBER
        if isinstance(node, Arithmetic):
            self.expect(node.left, NUMBER, f"'{node.operator}'")
            self.expect(node.right, NUMBER, f"'{node.operator}'")
            return NUMBER
        if isinstance(node, Compare):
            self.check_comparison(node)
            return BOOLEAN
        if isinstance(node, Between):
            self.check_between(node)
            return BOOLEAN
        if isinstance(node, InList):
            self.check_in(node)
            return BOOLEAN
        if isinstance(node, IsNull):
            self.require_column(node.operand, node, "'is null'")
            self.type_of(node.operand)
            return BOOLEAN
        if isinstance(node, Not):
            self.expect_condition(node.operand, "'not'")
            return BOOLEAN
        self.expect_condition(node.left, f"'{node.operator}'")
        self.expect_condition(node.right, f"'{node.operator}'")
        return BOOLEAN

    def column_type(self, node: ColumnRef) -> str:
        if node.name in self.column_types:
            return self.column_types[node.name]
        names = sorted(self.column_types)
        by_lowercase = {name.lower(): name for name in names}
        close = by_lowercase.get(node.name.lower()) or next(iter(difflib.get_close_matches(node.name, names, 1)), None)
        hint = f"did you mean '{close}'? " if close else ""
        raise self.fail(node, f"unknown column '{node.name}'",
                        f"{hint}columns of this data set: {', '.join(names) or '(none)'}")

    def expect(self, node: Node, expected: str, context: str) -> None:
        actual = self.type_of(node)
        if actual != expected:
            raise self.fail(node, f"{context} needs a {expected} but {self.describe(node)} is a {actual}",
                            f"use a {expected} column or literal here")

    def expect_condition(self, node: Node, context: str) -> None:
        if isinstance(node, Literal) and node.type == BOOLEAN:
            raise self.fail(node, f"literal {str(node.value).lower()} as a condition makes the rule constant",
                            "compare a column instead, or use the default segment for rows that match no rule")
        actual = self.type_of(node)
        if actual != BOOLEAN:
            raise self.fail(node, f"{context} needs a condition (true or false) but {self.describe(node)} is a "
                            f"{actual}", "compare it, for example monetary > 100 or country = 'France'")

    def describe(self, node: Node) -> str:
        if isinstance(node, ColumnRef):
            return f"column '{node.name}'"
        if isinstance(node, Literal):
            return f"literal {_literal_text(node)}"
        return f"the expression at position {node.offset + 1}"

    def require_column(self, node: Node, owner: Node, context: str) -> None:
        if not referenced_columns(node):
            raise self.fail(owner, f"{context} compares only literals, so it is always true or always false",
                            "compare a column of the data set, for example monetary > 100")

    def check_types_match(self, owner: Node, operator: str, left: Node, right: Node) -> str:
        left_type, right_type = self.type_of(left), self.type_of(right)
        temporal = {DATE, TIMESTAMP}
        if left_type != right_type and not {left_type, right_type} <= temporal:
            raise self.fail(right, f"type mismatch: {self.describe(left)} is a {left_type} but "
                            f"{self.describe(right)} is a {right_type}", _type_fix(left_type))
        if operator not in ("=", "!=") and left_type not in ORDERED_TYPES:
            raise self.fail(owner, f"operator '{operator}' does not apply to a {left_type}",
                            "compare booleans with = or !=")
        return left_type

    def check_comparison(self, node: Compare) -> None:
        self.check_types_match(node, node.operator, node.left, node.right)
        self.require_column(Arithmetic("+", node.left, node.right, node.offset), node, f"'{node.operator}'")

    def check_between(self, node: Between) -> None:
        self.check_types_match(node, "between", node.operand, node.low)
        self.check_types_match(node, "between", node.operand, node.high)
        everything = Arithmetic("+", node.operand, Arithmetic("+", node.low, node.high, node.offset), node.offset)
        self.require_column(everything, node, "'between'")
        bounds_are_literals = isinstance(node.low, Literal) and isinstance(node.high, Literal)
        if bounds_are_literals and node.low.type == node.high.type and node.low.value > node.high.value:
            raise self.fail(node.low, f"the range {_literal_text(node.low)} to {_literal_text(node.high)} is empty",
                            "write the lower bound first")

    def check_in(self, node: InList) -> None:
        self.require_column(node.operand, node, "'in'")
        for value in node.values:
            self.check_types_match(node, "in", node.operand, value)


def _literal_text(node: Literal) -> str:
    if node.type == STRING:
        return "'" + str(node.value).replace("'", "''") + "'"
    if node.type == BOOLEAN:
        return str(node.value).lower()
    if node.type in (DATE, TIMESTAMP):
        return f"{node.type} '{node.value}'"
    return str(node.value)


def _type_fix(expected: str) -> str:
    examples = {
        NUMBER: "compare it with a number such as 100 (no quotes)",
        STRING: "compare it with a quoted string such as 'France'",
        BOOLEAN: "compare it with true or false",
        DATE: "compare it with a date literal such as date '2011-12-31'",
        TIMESTAMP: "compare it with timestamp '2011-12-31 23:59:00' or date '2011-12-31'",
    }
    return examples[expected]


def referenced_columns(node: Node) -> set[str]:
    """Return the names of the columns that a syntax tree reads."""
    if isinstance(node, ColumnRef):
        return {node.name}
    if isinstance(node, Literal):
        return set()
    names: set[str] = set()
    for child in _children(node):
        names |= referenced_columns(child)
    return names


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Negate, Not, IsNull)):
        return (node.operand,)
    if isinstance(node, (Arithmetic, Compare, Logical)):
        return (node.left, node.right)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, InList):
        return (node.operand, *node.values)
    return ()


# Translation to Spark columns.

def to_column(node: Node) -> Column:
    """Build the Spark column of a checked syntax tree from F.col, F.lit, operators and try_* functions.

    Arithmetic uses try_add, try_subtract, try_multiply and try_divide, so an
    overflow or a division by zero gives null instead of failing the job.
    """
    if isinstance(node, Literal):
        if node.type == TIMESTAMP:
            # Cast from text so the session time zone applies, as it does when ingest parses timestamps.
            return F.lit(node.value.isoformat(sep=" ")).cast("timestamp")
        return F.lit(node.value)
    if isinstance(node, ColumnRef):
        return F.col(node.name)
    if isinstance(node, Negate):
        return F.try_subtract(F.lit(0), to_column(node.operand))
    if isinstance(node, Arithmetic):
        function = {"+": F.try_add, "-": F.try_subtract, "*": F.try_multiply, "/": F.try_divide}[node.operator]
        return function(to_column(node.left), to_column(node.right))
    if isinstance(node, Compare):
        left, right = to_column(node.left), to_column(node.right)
        return {
            "=": lambda: left == right, "!=": lambda: left != right, "<": lambda: left < right,
            "<=": lambda: left <= right, ">": lambda: left > right, ">=": lambda: left >= right,
        }[node.operator]()
    if isinstance(node, Between):
        operand = to_column(node.operand)
        inside = (operand >= to_column(node.low)) & (operand <= to_column(node.high))
        return ~inside if node.negated else inside
    if isinstance(node, InList):
        member = to_column(node.operand).isin([to_column(value) for value in node.values])
        return ~member if node.negated else member
    if isinstance(node, IsNull):
        operand = to_column(node.operand)
        return operand.isNotNull() if node.negated else operand.isNull()
    if isinstance(node, Not):
        return ~to_column(node.operand)
    left, right = to_column(node.left), to_column(node.right)
    return (left & right) if node.operator == "and" else (left | right)


@dataclass(frozen=True)
class Expression:
    """A parsed and type-checked rule or expression, ready to become a Spark column."""

    text: str
    where: str
    node: Node
    type: str
    columns: tuple[str, ...]

    def column(self) -> Column:
        return to_column(self.node)

    def condition(self) -> Column:
        """Return the condition as a column that is false, never null, where a value is missing."""
        return F.coalesce(to_column(self.node), F.lit(False))


def compile_condition(text: str, column_types: Mapping[str, str], where: str) -> Expression:
    """Parse and check a rule condition over columns of the given types (name to rule-language type).

    Raises RuleError naming `where`, the position and the fix when the text is not
    valid, names a column that is not in `column_types`, mixes types, or is constant.
    """
    node = parse(text, where)
    checker = _Checker(text, where, column_types)
    checker.expect_condition(node, "a rule")
    if not referenced_columns(node):
        raise checker.fail(node, "the condition reads no column, so it is always true or always false",
                           "compare a column of the data set, for example monetary > 100")
    return Expression(text, where, node, BOOLEAN, tuple(sorted(referenced_columns(node))))


def compile_value(text: str, column_types: Mapping[str, str], where: str, expected: str = NUMBER) -> Expression:
    """Parse and check an expression that computes a value of type `expected`, such as quantity * unit_price."""
    node = parse(text, where)
    checker = _Checker(text, where, column_types)
    actual = checker.type_of(node)
    if actual != expected:
        raise checker.fail(node, f"the expression computes a {actual}, not a {expected}",
                           f"write an expression that computes a {expected}, such as quantity * unit_price")
    if not referenced_columns(node):
        raise checker.fail(node, "the expression reads no column, so it is the same on every row",
                           "use at least one column of the data set")
    return Expression(text, where, node, actual, tuple(sorted(referenced_columns(node))))
