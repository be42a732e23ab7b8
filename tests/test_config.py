"""Config validation: load_config, parse_config and apply_overrides reject bad YAML with a clear message."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from stratify_spark.config import (
    DatasetConfig,
    KMeansParams,
    BisectingKMeansParams,
    apply_overrides,
    load_config,
    parse_config,
    validate_identifier,
    validate_run_id,
)
from stratify_spark.errors import ConfigError, ExitCode

VALID = {
    "tenant": "acme_retail",
    "dataset": "customers",
    "source": {"format": "csv", "path": "data/customers.csv", "csv": {"delimiter": ";", "encoding": "ISO-8859-1"}},
    "columns": [
        {"name": "customer_id", "type": "string", "required": True},
        {"name": "region", "type": "string"},
        {"name": "signup_date", "type": "date", "format": "dd/MM/yyyy"},
        {"name": "annual_spend", "type": "decimal(12,2)", "decimal_separator": ",", "thousands_separator": "."},
        {"name": "orders", "type": "integer"},
    ],
    "key": {"columns": ["customer_id"], "duplicates": "keep_last"},
    "segment": {
        "features": [{"name": "annual_spend", "log1p": True}, {"name": "orders", "missing": "median"}],
        "scaling": "minmax",
        "algorithm": {"name": "kmeans", "k": 4, "seed": 7},
    },
}

VALID_YAML = """\
tenant: acme_retail
dataset: customers
source:
  format: csv
  csv: {delimiter: ";"}
columns:
  - {name: customer_id, type: string, required: true}
  - {name: annual_spend, type: "decimal(12,2)"}
key:
  columns: [customer_id]
segment:
  features:
    - {name: annual_spend}
  algorithm: {name: kmeans, k: 3}
"""


def config_with(**changes) -> dict:
    """Return a deep copy of VALID with top-level keys replaced (None removes the key)."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def write_yaml(tmp_path: Path, text: str, name: str = "tenant.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- valid input -------------------------------------------------------------------------------


def test_parse_valid_config_types():
    config = parse_config(VALID)

    assert isinstance(config, DatasetConfig)
    assert config.tenant == "acme_retail"
    assert config.source.csv_options.delimiter == ";"
    assert config.source.csv_options.encoding == "ISO-8859-1"
    assert config.source.csv_options.header is True
    assert [column.type for column in config.columns] == ["string", "string", "date", "decimal(12,2)", "integer"]
    assert config.columns[3].is_numeric is True
    assert config.columns[2].is_numeric is False
    assert config.columns[1].source_name == "region"
    assert config.key.duplicates == "keep_last"
    assert config.ingest.mode == "append"
    assert isinstance(config.segment.algorithm, KMeansParams)
    assert config.segment.algorithm.k == 4
    assert config.segment.features[1].missing == "median"
    assert config.segment.features[0].missing == "fail"


def test_parse_normalizes_decimal_type():
    columns = [{"name": "amount", "type": " Decimal( 10 , 2 ) "}]

    config = parse_config(config_with(columns=columns, key=None, segment=None))

    assert config.columns[0].type == "decimal(10,2)"


def test_load_valid_yaml_file(tmp_path):
    config = load_config(write_yaml(tmp_path, VALID_YAML))

    assert config.dataset == "customers"
    assert config.source.csv_options.delimiter == ";"
    assert config.source.path is None
    assert config.segment.algorithm.k == 3


# --- unknown keys ------------------------------------------------------------------------------


def test_unknown_top_level_key_lists_allowed():
    data = config_with()
    data["colums"] = []

    with pytest.raises(ConfigError, match=r"colums: unknown key; allowed keys here: "
                       r"columns, dataset, entity_features, ingest, key, segment, source, tenant"):
        parse_config(data)


def test_unknown_column_key_lists_allowed():
    data = config_with()
    data["columns"][1]["requird"] = True

    with pytest.raises(ConfigError, match=r"columns\.1\.requird: unknown key; allowed keys here: "
                       r"decimal_separator, format, name, required, source, thousands_separator, type"):
        parse_config(data)


def test_unknown_csv_option_lists_allowed():
    data = config_with()
    data["source"]["csv"]["separator"] = ","

    with pytest.raises(ConfigError, match=r"source\.csv\.separator: unknown key; allowed keys here: "
                       r"delimiter, encoding, escape, header, multi_line, quote"):
        parse_config(data)


def test_unknown_algorithm_key_lists_allowed():
    data = config_with()
    data["segment"]["algorithm"]["iterations"] = 10

    with pytest.raises(ConfigError, match=r"unknown key; allowed keys here: distance_measure, init_mode, "
                       r"init_steps, k, max_iter, name, seed, tol") as raised:
        parse_config(data)
    assert "iterations" in str(raised.value)


def test_unknown_algorithm_name_rejected():
    data = config_with()
    data["segment"]["algorithm"] = {"name": "dbscan", "k": 3}

    with pytest.raises(ConfigError, match=r"segment\.algorithm.*'dbscan'"):
        parse_config(data)


# --- wrong types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("columns", 0, "required"), "yes", r"columns\.0\.required: invalid value 'yes'"),
        (("source", "csv", "header"), "true", r"source\.csv\.header: invalid value 'true'"),
        (("columns", 0, "name"), 12, r"columns\.0\.name: invalid value 12"),
        (("segment", "algorithm", "k"), "four", r"k: invalid value 'four'"),
        (("segment", "scaling"), "zscore", r"segment\.scaling: invalid value 'zscore'"),
        (("key", "duplicates"), "keep_any", r"key\.duplicates: invalid value 'keep_any'"),
        (("source", "format"), "xlsx", r"source\.format: invalid value 'xlsx'"),
    ],
)
def test_wrong_type_rejected(path, value, expected):
    data = config_with()
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value

    with pytest.raises(ConfigError, match=expected):
        parse_config(data)


def test_k_below_two_rejected():
    data = config_with()
    data["segment"]["algorithm"]["k"] = 1

    with pytest.raises(ConfigError, match=r"k: invalid value 1: .*greater than or equal to 2"):
        parse_config(data)


def test_delimiter_of_two_characters_rejected():
    data = config_with()
    data["source"]["csv"]["delimiter"] = ";;"

    with pytest.raises(ConfigError, match=r"source\.csv\.delimiter: invalid value ';;': must be exactly one "
                       r"character, got 2 characters"):
        parse_config(data)


def test_unknown_encoding_rejected():
    data = config_with()
    data["source"]["csv"]["encoding"] = "latin-99"

    with pytest.raises(ConfigError, match=r"source\.csv\.encoding: invalid value 'latin-99': unknown character set"):
        parse_config(data)


def test_csv_options_with_json_rejected():
    data = config_with()
    data["source"]["format"] = "json"

    with pytest.raises(ConfigError, match=r"'csv' options are only allowed with format 'csv', not 'json'"):
        parse_config(data)


def test_unknown_column_type_lists_allowed():
    data = config_with()
    data["columns"][4]["type"] = "int64"

    with pytest.raises(ConfigError, match=r"columns\.4\.type: invalid value 'int64': unknown type; allowed: "
                       r"string, integer, long, double, decimal\(p,s\), boolean, date, timestamp"):
        parse_config(data)


def test_top_level_list_rejected():
    with pytest.raises(ConfigError, match=r"tenant\.yaml: expected a mapping of keys at the top level, got list"):
        parse_config([VALID], source="tenant.yaml")


def test_missing_required_key_named():
    with pytest.raises(ConfigError, match=r"  - source: required key is missing"):
        parse_config(config_with(source=None))


# --- decimal(p,s) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("decimal(39,2)", r"decimal\(p,s\) needs 1 <= p <= 38 and 0 <= s <= p"),
        ("decimal(0,0)", r"decimal\(p,s\) needs 1 <= p <= 38 and 0 <= s <= p"),
        ("decimal(5,6)", r"decimal\(p,s\) needs 1 <= p <= 38 and 0 <= s <= p"),
        ("decimal(10)", r"unknown type"),
        ("decimal(10,-1)", r"unknown type"),
        ("decimal(a,b)", r"unknown type"),
    ],
)
def test_bad_decimal_rejected(declared, expected):
    data = config_with()
    data["columns"][3]["type"] = declared

    with pytest.raises(ConfigError, match=r"columns\.3\.type: invalid value " + re.escape(repr(declared)) + ": "
                       + expected):
        parse_config(data)


def test_decimal_edge_precision_accepted():
    data = config_with()
    data["columns"][3]["type"] = "decimal(38,38)"

    assert parse_config(data).columns[3].type == "decimal(38,38)"


def test_separators_on_string_rejected():
    data = config_with()
    data["columns"][1]["decimal_separator"] = ","

    with pytest.raises(ConfigError, match=r"'decimal_separator' and 'thousands_separator' are only allowed "
                       r"for numeric columns"):
        parse_config(data)


def test_equal_separators_rejected():
    data = config_with()
    data["columns"][3]["thousands_separator"] = ","

    with pytest.raises(ConfigError, match=r"'thousands_separator' must differ from 'decimal_separator'"):
        parse_config(data)


def test_format_on_number_rejected():
    data = config_with()
    data["columns"][4]["format"] = "dd/MM/yyyy"

    with pytest.raises(ConfigError, match=r"'format' is only allowed for date and timestamp columns, not integer"):
        parse_config(data)


# --- identifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant",
    ["../x", "..", "a/b", "acme'; DROP TABLE runs; --", 'acme"', "Acme", "ACME", "1acme", "_acme", "", "a" * 64,
     "acme retail", "acme-retail", "acme\n"],
)
def test_invalid_tenant_rejected(tenant):
    with pytest.raises(ConfigError, match=r"tenant: invalid value " + re.escape(repr(tenant))):
        parse_config(config_with(tenant=tenant))


def test_tenant_of_63_characters_accepted():
    tenant = "a" * 63

    assert parse_config(config_with(tenant=tenant)).tenant == tenant


def test_invalid_dataset_rejected():
    with pytest.raises(ConfigError, match=r"dataset: invalid value '\.\./\.\./etc'"):
        parse_config(config_with(dataset="../../etc"))


@pytest.mark.parametrize("value", ["../x", "x'", "X", "", "a.b", "acme\n", None, 7])
def test_validate_identifier_rejects(value):
    with pytest.raises(ConfigError, match=r"invalid tenant id " + re.escape(repr(value))):
        validate_identifier(value, "tenant id")


@pytest.mark.parametrize("value", ["../run", "run'1", "-run", "", "r" * 65, "run 1", "run/1", "run-1\n"])
def test_validate_run_id_rejects(value):
    with pytest.raises(ConfigError, match=r"invalid run id " + re.escape(repr(value))):
        validate_run_id(value)


def test_validate_run_id_accepts_edges():
    assert validate_run_id("R") == "R"
    assert validate_run_id("run-2024_01") == "run-2024_01"
    assert validate_run_id("r" * 64) == "r" * 64


def test_config_error_exit_code():
    assert ConfigError("x").exit_code == ExitCode.BAD_CONFIG
    assert int(ExitCode.BAD_CONFIG) == 2


# --- references between sections --------------------------------------------------------------


def test_feature_not_numeric_rejected():
    data = config_with()
    data["segment"]["features"].append({"name": "region"})

    with pytest.raises(ConfigError, match=r"feature 'region' has type string; features must be integer, long, "
                       r"double or decimal"):
        parse_config(data)


def test_feature_of_date_rejected():
    data = config_with()
    data["segment"]["features"] = [{"name": "signup_date"}]

    with pytest.raises(ConfigError, match=r"feature 'signup_date' has type date"):
        parse_config(data)


def test_feature_not_declared_rejected():
    data = config_with()
    data["segment"]["features"] = [{"name": "spend"}]

    with pytest.raises(ConfigError, match=r"feature 'spend' is not a declared column; declared: customer_id, "
                       r"region, signup_date, annual_spend, orders"):
        parse_config(data)


def test_feature_listed_twice_rejected():
    data = config_with()
    data["segment"]["features"] = [{"name": "orders"}, {"name": "orders", "missing": "mean"}]

    with pytest.raises(ConfigError, match=r"each feature may be listed once"):
        parse_config(data)


def test_key_column_not_declared_rejected():
    data = config_with(key={"columns": ["id"]})

    with pytest.raises(ConfigError, match=r"key column 'id' is not a declared column; declared: customer_id, "
                       r"region, signup_date, annual_spend, orders"):
        parse_config(data)


def test_key_order_by_not_declared_rejected():
    data = config_with(key={"columns": ["customer_id"], "order_by": "updated_at"})

    with pytest.raises(ConfigError, match=r"key column 'updated_at' is not a declared column"):
        parse_config(data)


@pytest.mark.parametrize(
    "key",
    [{"columns": ["customer_id"], "generate": True}, {"generate": False}, {"columns": []}, {}],
)
def test_key_columns_or_generate(key):
    with pytest.raises(ConfigError, match=r"declare exactly one of 'columns' \(a non-empty list\) or 'generate: true'"):
        parse_config(config_with(key=key))


def test_generated_key_with_order_by_rejected():
    with pytest.raises(ConfigError, match=r"'order_by' only applies to declared key columns"):
        parse_config(config_with(key={"generate": True, "order_by": "orders"}))


def test_segment_without_key_rejected():
    with pytest.raises(ConfigError, match=r"'segment' needs a 'key'"):
        parse_config(config_with(key=None))


def test_duplicate_column_names_rejected():
    data = config_with()
    data["columns"].append({"name": "region", "type": "string"})

    with pytest.raises(ConfigError, match=r"column names must be unique, ignoring case; repeated: region"):
        parse_config(data)


def test_reserved_column_name_rejected():
    data = config_with()
    data["columns"].append({"name": "record_key", "type": "string"})

    with pytest.raises(ConfigError, match=r"column names \['record_key'\] are reserved"):
        parse_config(data)


@pytest.mark.parametrize("name", ["reason", "reason_code", "_raw_0", "__check_3", "_corrupt_record"])
def test_ingest_work_column_name_rejected(name):
    data = config_with()
    data["columns"].append({"name": name, "type": "string"})

    with pytest.raises(ConfigError, match=rf"column names \['{name}'\] are used by the ingest") as raised:
        parse_config(data)
    assert "source: " + name in str(raised.value)


def test_ingest_work_names_cover_constants():
    from stratify_spark import casting, ingest, keys, reader
    from stratify_spark.config import INGEST_WORK_COLUMNS, INGEST_WORK_PREFIXES

    constants = {casting.REASON_COLUMN, casting.REASON_CODE_COLUMN, reader.CORRUPT_COLUMN, reader.ROW_POSITION_COLUMN,
                 ingest.RAW_VALUES_COLUMN, keys.EXISTING_KEY_COLUMN, keys._DUPLICATE_RANK, keys._CONTENT_HASH}
    assert constants == INGEST_WORK_COLUMNS
    assert reader.raw_column(0).startswith(INGEST_WORK_PREFIXES)
    assert f"{casting.CHECK_COLUMN_PREFIX}0".startswith(INGEST_WORK_PREFIXES)


def test_column_name_with_space_rejected():
    data = config_with()
    data["columns"][1]["name"] = "First Name"

    with pytest.raises(ConfigError, match=r"columns\.1\.name: invalid value 'First Name': .*map a source header"):
        parse_config(data)


# --- YAML files --------------------------------------------------------------------------------


def test_duplicate_yaml_key_rejected(tmp_path):
    text = VALID_YAML.replace("dataset: customers\n", "dataset: customers\ndataset: orders\n")
    path = write_yaml(tmp_path, text)

    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": duplicate key 'dataset' at line 3"):
        load_config(path)


def test_nested_duplicate_yaml_key_rejected(tmp_path):
    text = VALID_YAML.replace("  format: csv\n", "  format: csv\n  format: json\n")
    path = write_yaml(tmp_path, text)

    with pytest.raises(ConfigError, match=r"duplicate key 'format' at line 5"):
        load_config(path)


def test_missing_file_rejected(tmp_path):
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match=r"config file not found: " + re.escape(str(path))):
        load_config(path)


def test_invalid_yaml_names_file(tmp_path):
    path = write_yaml(tmp_path, "tenant: [acme\n")

    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": not valid YAML"):
        load_config(path)


def test_empty_file_rejected(tmp_path):
    path = write_yaml(tmp_path, "")

    with pytest.raises(ConfigError, match=r"expected a mapping of keys at the top level, got NoneType"):
        load_config(path)


def test_error_names_file_key_and_value(tmp_path):
    text = VALID_YAML.replace('type: "decimal(12,2)"', 'type: "decimal(40,2)"')
    path = write_yaml(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid config (1 problem(s)):"), message
    assert "columns.1.type" in message, message
    assert "'decimal(40,2)'" in message, message


def test_every_problem_listed(tmp_path):
    text = VALID_YAML.replace("tenant: acme_retail", "tenant: Acme").replace("k: 3", "k: 0")
    path = write_yaml(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "(2 problem(s))" in message, message
    assert "tenant: invalid value 'Acme'" in message, message
    assert "k: invalid value 0" in message, message


def test_yaml_boolean_for_string_rejected(tmp_path):
    # YAML 1.1 reads an unquoted `no` as False; a strict string field must not turn it into "False".
    text = VALID_YAML.replace("dataset: customers", "dataset: no")
    path = write_yaml(tmp_path, text)

    with pytest.raises(ConfigError, match=r"dataset: invalid value False"):
        load_config(path)


# --- command-line overrides --------------------------------------------------------------------


def test_override_k():
    config = parse_config(VALID)

    overridden = apply_overrides(config, "tenant.yaml", k=6)

    assert overridden.segment.algorithm.k == 6
    assert overridden.segment.algorithm.seed == 7
    assert config.segment.algorithm.k == 4


def test_override_algorithm_keeps_shared():
    config = parse_config(VALID)

    overridden = apply_overrides(config, "tenant.yaml", algorithm="bisecting_kmeans")

    assert isinstance(overridden.segment.algorithm, BisectingKMeansParams)
    assert overridden.segment.algorithm.k == 4
    assert overridden.segment.algorithm.seed == 7


def test_override_nothing_returns_same():
    config = parse_config(VALID)

    assert apply_overrides(config, "tenant.yaml") is config


def test_override_bad_k_names_source():
    config = parse_config(VALID)

    with pytest.raises(ConfigError, match=r"(?s)tenant\.yaml \(with command-line overrides\): invalid config.*"
                       r"k: invalid value 1", ) as raised:
        apply_overrides(config, "tenant.yaml", k=1)
    assert "greater than or equal to 2" in str(raised.value)


def test_override_unknown_algorithm_rejected():
    config = parse_config(VALID)

    with pytest.raises(ConfigError, match=r"'dbscan'"):
        apply_overrides(config, "tenant.yaml", algorithm="dbscan")


def test_override_without_segment_rejected():
    config = parse_config(config_with(segment=None))

    with pytest.raises(ConfigError, match=r"tenant\.yaml: --algorithm and --k need a 'segment' section"):
        apply_overrides(config, "tenant.yaml", k=3)


@pytest.mark.parametrize("name, message", [
    ("Reason", r"column names \['Reason'\] are used by the ingest"),
    ("Record_Key", r"column names \['Record_Key'\] are reserved"),
    ("__CHECK_0", r"column names \['__CHECK_0'\] are used by the ingest"),
    ("REGION", r"column names must be unique, ignoring case; repeated: REGION, region"),
])
def test_column_names_compared_ignoring_case(name, message):
    data = config_with()
    data["columns"].append({"name": name, "type": "string"})

    with pytest.raises(ConfigError, match=message):
        parse_config(data)
