"""The rule language: parsing, type checks, rejected input (injection attempts) and evaluation in Spark."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from stratify_spark.config import parse_config
from stratify_spark.errors import ConfigError
from stratify_spark.rules import RuleError, compile_condition, compile_value, parse, tokenize

COLUMN_TYPES = {
    "monetary": "number",
    "frequency": "number",
    "recency_days": "number",
    "country": "string",
    "first_purchase": "date",
    "last_seen": "timestamp",
    "is_vip": "boolean",
}
WHERE = "rule 'big_spenders'"


def rule_error(text: str, column_types: dict = COLUMN_TYPES) -> RuleError:
    with pytest.raises(RuleError) as caught:
        compile_condition(text, column_types, WHERE)
    return caught.value


@pytest.fixture(scope="module")
def customers(spark):
    """Six customers with nulls and edge values: a zero, a tie at 1000, a quote in a name."""
    schema = ("record_key string, monetary double, frequency long, recency_days int, country string, "
              "first_purchase date, last_seen timestamp, is_vip boolean")
    rows = [
        ("c1", 1000.0, 5, 10, "France", dt.date(2011, 1, 5), dt.datetime(2011, 12, 1, 10, 0), True),
        ("c2", 1000.5, 1, 200, "United Kingdom", dt.date(2010, 12, 1), dt.datetime(2011, 6, 30, 23, 59), False),
        ("c3", 0.0, 0, 365, "O'Brien Land", dt.date(2011, 6, 1), None, None),
        ("c4", None, 3, None, None, None, dt.datetime(2011, 12, 9, 0, 0), True),
        ("c5", 250.0, 2, 30, "Germany", dt.date(2011, 1, 1), dt.datetime(2011, 1, 1, 0, 0), False),
        ("c6", -20.0, 7, 1, "france", dt.date(2011, 12, 9), dt.datetime(2011, 12, 9, 12, 0), False),
    ]
    return spark.createDataFrame(rows, schema)


def matching_keys(df, text: str) -> list[str]:
    expression = compile_condition(text, COLUMN_TYPES, WHERE)
    return sorted(row["record_key"] for row in df.filter(expression.condition()).select("record_key").collect())


# --- evaluation -------------------------------------------------------------------------------------


CONDITION_CASES = [
    ("monetary > 1000", ["c2"]),
    ("monetary >= 1000", ["c1", "c2"]),
    ("monetary = 1000", ["c1"]),
    ("monetary == 1000.0", ["c1"]),
    ("monetary != 1000", ["c2", "c3", "c5", "c6"]),
    ("monetary <> 1000", ["c2", "c3", "c5", "c6"]),
    ("monetary < 0", ["c6"]),
    ("monetary < -19.5", ["c6"]),
    ("frequency between 2 and 5", ["c1", "c4", "c5"]),
    ("frequency not between 2 and 5", ["c2", "c3", "c6"]),
    ("country in ('France', 'Germany')", ["c1", "c5"]),
    ("country not in ('France', 'Germany')", ["c2", "c3", "c6"]),
    ("country = 'O''Brien Land'", ["c3"]),
    ("monetary is null", ["c4"]),
    ("monetary is not null", ["c1", "c2", "c3", "c5", "c6"]),
    ("is_vip", ["c1", "c4"]),
    ("is_vip = false", ["c2", "c5", "c6"]),
    ("not is_vip", ["c2", "c5", "c6"]),
    ("monetary > 100 and recency_days <= 30", ["c1", "c5"]),
    ("monetary > 1000 or frequency >= 7", ["c2", "c6"]),
    ("not (monetary > 100)", ["c3", "c6"]),
    ("monetary > 100 and (country = 'France' or country = 'Germany')", ["c1", "c5"]),
    ("monetary > 100 and country = 'France' or frequency = 7", ["c1", "c6"]),
    ("monetary / frequency > 150", ["c1", "c2"]),
    ("monetary / frequency is null", ["c3", "c4"]),
    ("monetary - 2 * 100 > 800", ["c2"]),
    ("-monetary > 0", ["c6"]),
    ("first_purchase >= date '2011-01-01'", ["c1", "c3", "c5", "c6"]),
    ("first_purchase between date '2011-01-01' and date '2011-06-01'", ["c1", "c3", "c5"]),
    ("last_seen >= timestamp '2011-12-09 00:00:00'", ["c4", "c6"]),
    ("last_seen < date '2011-06-30'", ["c5"]),
]


@pytest.fixture(scope="module")
def evaluated(customers):
    """Evaluate every condition of CONDITION_CASES in one Spark job; return {text: sorted matching keys}."""
    columns = [compile_condition(text, COLUMN_TYPES, WHERE).condition().alias(f"case{index}")
               for index, (text, _) in enumerate(CONDITION_CASES)]
    rows = customers.select("record_key", *columns).collect()
    return {text: sorted(row["record_key"] for row in rows if row[f"case{index}"])
            for index, (text, _) in enumerate(CONDITION_CASES)}


@pytest.mark.parametrize(("text", "expected"), CONDITION_CASES)
def test_condition_matches_rows(evaluated, text, expected):
    assert evaluated[text] == expected


def test_keywords_case_insensitive(customers):
    assert matching_keys(customers, "monetary > 100 AND NOT is_vip") == ["c2", "c5"]


def test_null_never_matches_either_way(customers):
    above = matching_keys(customers, "recency_days > 100")
    not_above = matching_keys(customers, "not (recency_days > 100)")

    assert "c4" not in above
    assert "c4" not in not_above


def test_string_literal_stays_literal(customers):
    # The quote doubling makes the whole text one string value, never SQL.
    assert matching_keys(customers, "country = 'France'' or ''1''=''1'") == []


def test_string_comparison_case_sensitive(customers):
    assert matching_keys(customers, "country = 'france'") == ["c6"]


def test_amount_expression_values(spark):
    df = spark.createDataFrame([(6, Decimal("2.550")), (0, Decimal("1.000")), (None, Decimal("3.000"))],
                               "quantity int, unit_price decimal(10,3)")
    amount = compile_value("quantity * unit_price", {"quantity": "number", "unit_price": "number"}, "amount")

    values = [row[0] for row in df.select(amount.column()).collect()]

    assert values == [Decimal("15.300"), Decimal("0.000"), None]


def test_division_by_zero_gives_null(spark):
    df = spark.createDataFrame([(10.0, 0)], "monetary double, frequency long")
    ratio = compile_value("monetary / frequency", COLUMN_TYPES, "ratio")

    assert df.select(ratio.column()).first()[0] is None


# --- syntax errors with position --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("monetary > ", 12, "the rule ends where a value is expected"),
        ("monetary > 100 and", 19, "the rule ends where a value is expected"),
        ("monetary >> 100", 11, "unexpected '>' where a value is expected"),
        ("(monetary > 100", 16, "expected ')' to close the '(' at position 1"),
        ("monetary > 100)", 15, "')' has no matching '('"),
        ("monetary > 1 < 2", 14, "a second comparison operator '<' follows a comparison"),
        ("frequency between 1 or 3", 21, "expected 'and' between the bounds of 'between'"),
        ("country in 'France'", 12, "expected '(' after 'in'"),
        ("country in ('France' 'Spain')", 22, "expected ',' or ')' in the list of 'in'"),
        ("country in (recency_days)", 13, "the values of 'in' must be literals"),
        ("monetary is 5", 13, "expected 'null' after 'is'"),
        ("monetary = null", 12, "null is not a value"),
        ("country = 'France", 11, "string literal is not closed"),
        ("monetary > 1e3", 12, "invalid number '1e3'"),
        ("monetary > 1.", 12, "invalid number '1.'"),
        ("first_purchase > date '2011-02-30'", 23, "date '2011-02-30' is not a valid date"),
        ("first_purchase > date 2011", 23, "expected a quoted value after 'date'"),
        ("monetary > 100 frequency > 2", 16, "unexpected 'frequency' after a complete condition"),
        ("   ", 1, "the rule is empty"),
    ],
)
def test_syntax_error_position(text, position, problem):
    error = rule_error(text)

    assert error.position == position, str(error)
    assert problem in str(error)
    assert str(error).startswith(f"{WHERE}: ")


def test_error_shows_caret_under_position():
    error = rule_error("monetary > 100 and spend > 5")

    assert str(error).splitlines()[1:] == ["    monetary > 100 and spend > 5", "                       ^"]


def test_error_caret_on_second_line():
    error = rule_error("monetary > 100\nand spend > 5")

    assert error.position == 20
    assert str(error).splitlines()[1:] == ["    and spend > 5", "        ^"]


def test_nesting_limit():
    error = rule_error("(" * 50 + "monetary > 1" + ")" * 50)

    assert "nests more than 40 levels" in str(error)


def test_length_limit():
    text = " or ".join(["monetary > 1"] * 200)

    error = rule_error(text)

    assert "the rule has 3196 characters" in str(error)


# --- names and types --------------------------------------------------------------------------------


def test_unknown_column_lists_columns():
    error = rule_error("spend > 100")

    assert error.position == 1
    assert "unknown column 'spend'" in str(error)
    assert "columns of this data set: country, first_purchase, frequency, is_vip, last_seen, monetary" in str(error)


def test_unknown_column_suggests_close_name():
    assert "did you mean 'monetary'?" in str(rule_error("Monetary > 100"))
    assert "did you mean 'frequency'?" in str(rule_error("frequncy > 2"))


@pytest.mark.parametrize(
    ("text", "position", "problem", "fix"),
    [
        ("monetary > '100'", 12, "column 'monetary' is a number but literal '100' is a string",
         "compare it with a number such as 100"),
        ("country = 5", 11, "column 'country' is a string but literal 5 is a number",
         "compare it with a quoted string"),
        ("first_purchase > '2011-01-01'", 18, "column 'first_purchase' is a date but literal '2011-01-01' is a string",
         "date '2011-12-31'"),
        ("is_vip = 1", 10, "column 'is_vip' is a boolean but literal 1 is a number", "compare it with true or false"),
        ("is_vip > false", 8, "operator '>' does not apply to a boolean", "compare booleans with = or !="),
        ("country in ('France', 3)", 23, "literal 3 is a number", "quoted string"),
        ("frequency between 1 and '5'", 25, "literal '5' is a string", "number"),
        ("country * 2 > 1", 1, "'*' needs a number but column 'country' is a string", "use a number"),
        ("monetary", 1, "a rule needs a condition (true or false) but column 'monetary' is a number",
         "compare it"),
        ("monetary > 1 and country", 18, "'and' needs a condition (true or false) but column 'country' is a string",
         "compare it"),
        ("frequency between 5 and 1", 19, "the range 5 to 1 is empty", "write the lower bound first"),
    ],
)
def test_type_error(text, position, problem, fix):
    error = rule_error(text)

    assert error.position == position, str(error)
    assert problem in str(error)
    assert fix in str(error)


@pytest.mark.parametrize("text", ["1 = 1", "true", "not false", "5 between 1 and 9", "'a' in ('a')",
                                  "monetary > 1 or true"])
def test_constant_condition_rejected(text):
    error = rule_error(text)

    assert re.search(r"always true or always false|makes the rule constant", str(error)), str(error)


def test_value_expression_must_be_number():
    with pytest.raises(RuleError, match=r"the expression computes a boolean, not a number"):
        compile_value("quantity > 1", {"quantity": "number"}, "entity_features.amount")


def test_value_expression_needs_column():
    with pytest.raises(RuleError, match=r"reads no column"):
        compile_value("2 * 3", {"quantity": "number"}, "entity_features.amount")


# --- untrusted input: injection attempts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("x > 1) or (1=1", 6, "')' has no matching '('"),
        ("monetary > 1) or (1=1", 13, "')' has no matching '('"),
        ("spend > 0; DROP TABLE x", 10, "';' is not allowed"),
        ("monetary > 0; DROP TABLE stratify.runs", 13, "';' is not allowed"),
        ("upper(country) = 'A'", 1, "function call upper(...) is not allowed"),
        ("monetary > (select max(monetary) from stratify.runs)", 47, "'.' is not allowed"),
        ("monetary > (select max(monetary) from runs)", 20, "expected ')' to close the '(' at position 12"),
        ("select * from stratify.runs", 23, "'.' is not allowed"),
        ("monetary in (select monetary from customers)", 14, "the values of 'in' must be literals"),
        ("`monetary` > 1", 1, "backtick is not allowed"),
        ("`monetary` > 1 or `1`=`1`", 1, "backtick is not allowed"),
        ('"monetary" > 1', 1, "double quote is not allowed"),
        ("monetary > 1 -- and frequency > 2", 14, "comment marker '--' is not allowed"),
        ("monetary > 1 /* x */", 14, "comment marker '/*' is not allowed"),
        ("customers.monetary > 1", 10, "'.' is not allowed"),
        ("other_tenant_balance > 1", 1, "unknown column 'other_tenant_balance'"),
        ("record_key = 'c1'", 1, "unknown column 'record_key'"),
        ("tenant = 'acme'", 1, "unknown column 'tenant'"),
        ("balance > 0", 1, "unknown column 'balance'"),
        ("monetary > 1 or current_user() = 'root'", 17, "function call current_user(...) is not allowed"),
        ("monetary > 1 ${x}", 14, "character '$' is not allowed"),
        ("monetary > 1 union all select 1", 14, "unexpected 'union' after a complete condition"),
        ("monetary \u003e 1 or country = 'a' || 'b'", 31, "character '|' is not allowed"),
        ("monetary > 1 & 1", 14, "character '&' is not allowed"),
        ("monetary > :param", 12, "character ':' is not allowed"),
        ("monetary > ?", 12, "character '?' is not allowed"),
        ("monetary > 1\\", 13, "character '\\\\' is not allowed"),
    ],
)
def test_injection_rejected(text, position, problem):
    error = rule_error(text)

    assert error.position == position, str(error)
    assert problem in str(error)


@pytest.mark.parametrize(
    ("text", "position", "code_point"),
    [
        ("monetary \uff1e 1", 10, "U+FF1E"),          # fullwidth greater-than sign
        ("monet\u0430ry > 1", 6, "U+0430"),           # Cyrillic small a inside a column name
        ("monetary >\u00a01", 11, "U+00A0"),          # no-break space
        ("monetary > 1\u200b", 13, "U+200B"),         # zero-width space
        ("monetary > \u0661", 12, "U+0661"),          # Arabic-Indic digit one
        ("\ufeffmonetary > 1", 1, "U+FEFF"),          # byte-order mark
        ("\uff4d\uff4f\uff4e\uff45\uff54\uff41\uff52\uff59 > 1", 1, "U+FF4D"),  # fullwidth letters
    ],
)
def test_non_ascii_outside_strings_rejected(text, position, code_point):
    error = rule_error(text)

    assert error.position == position, str(error)
    assert code_point in str(error)


@pytest.mark.parametrize(
    ("text", "code_point"),
    [
        ("country = 'Fr\u202eance'", "U+202E"),   # right-to-left override
        ("country = 'Fr\u200bance'", "U+200B"),   # zero-width space
        ("country = 'Fr\x00ance'", "U+0000"),     # NUL
        ("country = 'Fr\nance'", "U+000A"),       # line break inside a string
    ],
)
def test_invisible_characters_in_strings_rejected(text, code_point):
    error = rule_error(text)

    assert code_point in str(error)
    assert error.position == 14


def test_accented_letters_in_strings_allowed():
    expression = compile_condition("country = 'Côte d''Ivoire'", COLUMN_TYPES, WHERE)

    assert expression.node.right.value == "Côte d'Ivoire"


def test_tokenizer_never_yields_unknown_kinds():
    tokens = tokenize("not (monetary >= 1.5) and country in ('a', 'b') or x is not null", WHERE)

    assert {token.kind for token in tokens} <= {"keyword", "identifier", "number", "string", "operator", "(", ")",
                                                ",", "end"}


def test_parse_rejects_non_text():
    with pytest.raises(RuleError, match=r"expected rule text, got int"):
        parse(5, WHERE)


# --- rules in a config file -------------------------------------------------------------------------


def rules_config(rules: list[dict], bands: list[dict] | None = None) -> dict:
    return {
        "tenant": "acme",
        "dataset": "customers",
        "source": {"format": "csv"},
        "columns": [
            {"name": "customer_id", "type": "string"},
            {"name": "spend", "type": "decimal(12,2)"},
            {"name": "orders", "type": "integer"},
            {"name": "region", "type": "string"},
        ],
        "key": {"columns": ["customer_id"]},
        "segment": {
            "features": [{"name": "spend"}, {"name": "orders"}],
            "algorithm": {"name": "rules", "segments": rules, "bands": bands or []},
        },
    }


def test_config_rule_error_names_rule_and_key():
    data = rules_config([{"name": "vip", "when": "spend > 1000"}, {"name": "north", "when": "regoin = 'north'"}])

    with pytest.raises(ConfigError) as caught:
        parse_config(data, "acme.yaml")

    message = str(caught.value)
    assert message.startswith("acme.yaml: invalid config (1 problem(s)):\n  - segment.algorithm.segments[1].when "
                              "(rule 'north'): unknown column 'regoin' at position 1")
    assert "did you mean 'region'?" in message


def test_config_rules_may_read_band_scores():
    data = rules_config([{"name": "top", "when": "spend_band = 4 and region = 'north'"}],
                        bands=[{"name": "spend_band", "feature": "spend", "bands": 4}])

    config = parse_config(data, "acme.yaml")

    assert config.segment.algorithm.k == 2


def test_config_band_of_text_column_rejected():
    data = rules_config([{"name": "top", "when": "spend > 1"}],
                        bands=[{"name": "region_band", "feature": "region", "bands": 4}])

    with pytest.raises(ConfigError, match=r"segment.algorithm.bands\[0\].feature: 'region' is not a declared "
                                          r"numeric column; numeric columns: orders, spend"):
        parse_config(data, "acme.yaml")


def test_config_band_name_clashes_with_column():
    data = rules_config([{"name": "top", "when": "spend > 1"}],
                        bands=[{"name": "orders", "feature": "spend", "bands": 4}])

    with pytest.raises(ConfigError, match=r"band name 'orders' is already a column"):
        parse_config(data, "acme.yaml")


def test_config_duplicate_segment_names_rejected():
    data = rules_config([{"name": "vip", "when": "spend > 1000"}, {"name": "other", "when": "orders > 1"}])

    with pytest.raises(ConfigError, match=r"segment names must be unique, including the default segment 'other'; "
                                          r"repeated: other"):
        parse_config(data, "acme.yaml")


def test_config_log1p_rejected_for_rules():
    data = rules_config([{"name": "vip", "when": "spend > 1000"}])
    data["segment"]["features"][0]["log1p"] = True

    with pytest.raises(ConfigError, match=r"feature 'spend' sets log1p or missing, which rule runs do not use"):
        parse_config(data, "acme.yaml")
