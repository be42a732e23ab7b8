"""Typed, validated configuration of one tenant data set.

One YAML file describes one tenant data set: where its files are, the declared
schema, the record key, how to ingest it and how to segment it. The file is
parsed into the pydantic models below and validated before any Spark work, so
that a typo fails in a second with the file, the key and the allowed values.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stratify_spark.errors import ConfigError

# \Z, not $, because $ also matches before a trailing newline.
IDENTIFIER_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
COLUMN_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
DECIMAL_TYPE_PATTERN = re.compile(r"^decimal\(\s*(\d{1,2})\s*,\s*(\d{1,2})\s*\)$")

SIMPLE_TYPES = ("string", "integer", "long", "double", "boolean", "date", "timestamp")
NUMERIC_TYPES = ("integer", "long", "double")
ALLOWED_TYPES_TEXT = "string, integer, long, double, decimal(p,s), boolean, date, timestamp"


def validate_identifier(value: str, what: str) -> str:
    """Return `value` if it is a safe tenant or data set id, else raise ConfigError.

    The id becomes part of table paths and SQL predicates, so only lowercase
    letters, digits and underscores are accepted.
    """
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.match(value):
        raise ConfigError(
            f"invalid {what} {value!r}: expected 1 to 63 characters of lowercase letters, "
            "digits and underscores, starting with a letter (for example 'acme_retail')"
        )
    return value


def validate_run_id(value: str, what: str = "run id") -> str:
    """Return `value` if it is a safe run id (or ingest id, named by `what`), else raise ConfigError."""
    if not isinstance(value, str) or not RUN_ID_PATTERN.match(value):
        raise ConfigError(
            f"invalid {what} {value!r}: expected 1 to 64 characters of letters, digits, "
            "'_' and '-', starting with a letter or digit"
        )
    return value


class StrictModel(BaseModel):
    """Base model: unknown keys are errors and values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CsvOptions(StrictModel):
    """Options of the CSV reader; each maps to the Spark CSV option of the same meaning."""

    delimiter: str = Field(",", description="field separator, one character")
    quote: str = Field('"', description="quote character, one character")
    escape: str = Field('"', description="escape character inside quoted fields, one character")
    header: bool = Field(True, description="the first line of every file contains the column names")
    encoding: str = Field("UTF-8", description="character set, for example UTF-8 or ISO-8859-1")
    multi_line: bool = Field(False, description="quoted fields may contain line breaks")

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError(f"must be exactly one character, got {len(value)} characters")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError("unknown character set; use for example UTF-8, ISO-8859-1 or windows-1252") from None
        return value


class SourceConfig(StrictModel):
    """Source location and reader format."""

    format: Literal["csv", "json", "parquet"]
    path: Optional[str] = Field(None, description="file, folder or glob; --source on the command line overrides it")
    csv: Optional[CsvOptions] = None

    @model_validator(mode="after")
    def _csv_options_only_for_csv(self) -> "SourceConfig":
        if self.csv is not None and self.format != "csv":
            raise ValueError(f"'csv' options are only allowed with format 'csv', not {self.format!r}")
        return self

    @property
    def csv_options(self) -> CsvOptions:
        return self.csv or CsvOptions()


class ColumnSpec(StrictModel):
    """One declared column of the target table."""

    name: str
    type: str
    source: Optional[str] = Field(None, description="column name in the source file; defaults to name")
    required: bool = False
    format: Optional[str] = Field(None, description="date or timestamp pattern, for example dd/MM/yyyy")
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Optional[Literal[",", ".", " ", "'", "_"]] = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not COLUMN_NAME_PATTERN.match(value):
            raise ValueError(
                "column names must be letters, digits and underscores, starting with a letter or "
                "underscore; map a source header such as 'First Name' with 'source'"
            )
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        normalized = value.strip().lower()
        if normalized in SIMPLE_TYPES:
            return normalized
        match = DECIMAL_TYPE_PATTERN.match(normalized)
        if match:
            precision, scale = int(match.group(1)), int(match.group(2))
            if not 1 <= precision <= 38 or scale > precision:
                raise ValueError("decimal(p,s) needs 1 <= p <= 38 and 0 <= s <= p")
            return f"decimal({precision},{scale})"
        raise ValueError(f"unknown type; allowed: {ALLOWED_TYPES_TEXT}")

    @model_validator(mode="after")
    def _formats_fit_type(self) -> "ColumnSpec":
        if self.format is not None and self.type not in ("date", "timestamp"):
            raise ValueError(f"'format' is only allowed for date and timestamp columns, not {self.type}")
        is_number = self.is_numeric
        if not is_number and (self.decimal_separator != "." or self.thousands_separator is not None):
            raise ValueError("'decimal_separator' and 'thousands_separator' are only allowed for numeric columns")
        if self.thousands_separator is not None and self.thousands_separator == self.decimal_separator:
            raise ValueError("'thousands_separator' must differ from 'decimal_separator'")
        return self

    @property
    def source_name(self) -> str:
        return self.source if self.source is not None else self.name

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES or self.type.startswith("decimal(")


class KeyConfig(StrictModel):
    """The record key: declared columns, or a key generated from the row content."""

    columns: Optional[list[str]] = None
    generate: bool = False
    duplicates: Literal["fail", "keep_first", "keep_last"] = "fail"
    order_by: Optional[str] = Field(
        None, description="column that decides first and last among duplicates; defaults to source file and position"
    )

    @model_validator(mode="after")
    def _columns_or_generate(self) -> "KeyConfig":
        if bool(self.columns) == self.generate:
            raise ValueError("declare exactly one of 'columns' (a non-empty list) or 'generate: true'")
        if self.generate and self.order_by is not None:
            raise ValueError("'order_by' only applies to declared key columns")
        return self


class IngestConfig(StrictModel):
    """Write mode of an ingest into the data set table."""

    mode: Literal["append", "overwrite"] = "append"


class FeatureSpec(StrictModel):
    """One numeric feature of a segmentation run."""

    name: str
    missing: Literal["drop", "mean", "median", "fail"] = "fail"
    log1p: bool = Field(False, description="apply log(1 + x) before scaling; values must be >= 0")


class KMeansParams(StrictModel):
    """Parameters of pyspark.ml.clustering.KMeans."""

    name: Literal["kmeans"]
    k: int = Field(..., ge=2, le=1000, description="number of segments requested")
    seed: int = 42
    max_iter: int = Field(20, ge=1, le=1000)
    tol: float = Field(1e-4, ge=0.0)
    init_mode: Literal["k-means||", "random"] = "k-means||"
    init_steps: int = Field(2, ge=1, le=100)
    distance_measure: Literal["euclidean", "cosine"] = "euclidean"

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class BisectingKMeansParams(StrictModel):
    """Parameters of pyspark.ml.clustering.BisectingKMeans."""

    name: Literal["bisecting_kmeans"]
    k: int = Field(..., ge=2, le=1000, description="number of leaf segments requested")
    seed: int = 42
    max_iter: int = Field(20, ge=1, le=1000)
    min_divisible_cluster_size: float = Field(1.0, gt=0.0)
    distance_measure: Literal["euclidean", "cosine"] = "euclidean"

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class RuleSpec(StrictModel):
    """One named segment of a rule run: the rows whose condition is true, unless an earlier rule took them."""

    name: str = Field(..., description="segment name: lowercase letters, digits and underscores")
    when: str = Field(..., description="condition in the rule language of docs/rules.md, at most 2000 characters")

    @field_validator("name")
    @classmethod
    def _valid_segment_name(cls, value: str) -> str:
        if not IDENTIFIER_PATTERN.match(value):
            raise ValueError("segment names are 1 to 63 lowercase letters, digits and underscores, starting with "
                             "a letter, for example loyal_customers")
        return value


class BandSpec(StrictModel):
    """Quantile bands (n-tiles) of one numeric column, added to each row as an integer score column."""

    name: str = Field(..., description="name of the score column that rules can read, for example spend_band")
    feature: str = Field(..., description="declared numeric column to band")
    bands: int = Field(..., ge=2, le=100, description="number of bands; scores run from 1 to bands")
    descending: bool = Field(False, description="low values get high scores, as recency does in RFM")

    @field_validator("name")
    @classmethod
    def _valid_band_name(cls, value: str) -> str:
        if not IDENTIFIER_PATTERN.match(value):
            raise ValueError("band names are 1 to 63 lowercase letters, digits and underscores, starting with a letter")
        return value


# The RFM preset's segments over 1-to-5 scores. The first matching rule wins, so the order matters.
RFM_SEGMENTS = (
    ("champions", "r_score >= 4 and f_score >= 4 and m_score >= 4"),
    ("loyal_customers", "r_score >= 3 and f_score >= 4"),
    ("cannot_lose_them", "r_score <= 2 and f_score >= 4 and m_score >= 4"),
    ("at_risk", "r_score <= 2 and f_score >= 3"),
    ("new_customers", "r_score = 5 and f_score = 1"),
    ("potential_loyalists", "r_score >= 4 and f_score <= 3"),
    ("need_attention", "r_score = 3 and f_score >= 2"),
    ("about_to_sleep", "r_score = 3 and f_score = 1"),
    ("hibernating", "r_score <= 2 and f_score <= 2"),
)
RFM_BANDS = 5


def _rfm_default_segments() -> list[RuleSpec]:
    return [RuleSpec(name=name, when=when) for name, when in RFM_SEGMENTS]


def _check_rule_list(segments: list[RuleSpec], default: str) -> None:
    """Raise ConfigError naming the key when segment names repeat or the default name is invalid."""
    names = [segment.name for segment in segments] + [default]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"segment.algorithm.segments: segment names must be unique, including the default "
                          f"segment {default!r}; repeated: {', '.join(repeated)}")
    if not IDENTIFIER_PATTERN.match(default):
        raise ConfigError(f"segment.algorithm.default: invalid segment name {default!r}; use lowercase letters, "
                          "digits and underscores, starting with a letter")


def _valid_cut_points_from(value: Optional[str]) -> Optional[str]:
    if value is not None and not RUN_ID_PATTERN.match(value):
        raise ValueError("expected a run id: 1 to 64 letters, digits, '_' and '-', starting with a letter or digit")
    return value


class RulesParams(StrictModel):
    """A rule run: ordered named segments with conditions, optional quantile bands, and a default segment."""

    name: Literal["rules"]
    bands: list[BandSpec] = Field(default_factory=list, description="score columns computed before the rules")
    segments: list[RuleSpec] = Field(..., min_length=1, max_length=100, description="first matching rule wins")
    default: str = Field("other", description="segment of the rows that match no rule")
    cut_points_from: Optional[str] = Field(None, description="run id whose stored cut points this run reuses")

    _cut_points_from = field_validator("cut_points_from")(_valid_cut_points_from)

    @model_validator(mode="after")
    def _names_unique(self) -> "RulesParams":
        _check_rule_list(self.segments, self.default)
        band_names = [band.name for band in self.bands]
        if len(set(band_names)) != len(band_names):
            raise ConfigError(f"segment.algorithm.bands: band names must be unique; got {band_names}")
        return self

    @property
    def k(self) -> int:
        return len(self.segments) + 1

    def band_specs(self) -> list[BandSpec]:
        return list(self.bands)


class RfmParams(StrictModel):
    """The RFM preset: recency, frequency and monetary scores from 1 to 5 and named segments over them."""

    name: Literal["rfm"]
    recency: str = Field("recency_days", description="column of days since the last purchase")
    frequency: str = Field("frequency", description="column of the number of orders")
    monetary: str = Field("monetary", description="column of the money spent")
    bands: int = Field(RFM_BANDS, ge=2, le=10, description="bands per score; the default segments need 5")
    segments: list[RuleSpec] = Field(default_factory=_rfm_default_segments, min_length=1, max_length=100,
                                     description="rules over r_score, f_score and m_score; first match wins")
    default: str = Field("other", description="segment of the rows that match no rule")
    cut_points_from: Optional[str] = Field(None, description="run id whose stored cut points this run reuses")

    _cut_points_from = field_validator("cut_points_from")(_valid_cut_points_from)

    @model_validator(mode="after")
    def _names_unique(self) -> "RfmParams":
        _check_rule_list(self.segments, self.default)
        if self.bands != RFM_BANDS and [(s.name, s.when) for s in self.segments] == list(RFM_SEGMENTS):
            raise ConfigError(f"segment.algorithm.bands: the default RFM segments assume {RFM_BANDS} bands; "
                              f"declare 'segments' for {self.bands} bands")
        return self

    @property
    def k(self) -> int:
        return len(self.segments) + 1

    def band_specs(self) -> list[BandSpec]:
        """Return the r_score, f_score and m_score bands; recency is descending so recent buyers score high."""
        return [
            BandSpec(name="r_score", feature=self.recency, bands=self.bands, descending=True),
            BandSpec(name="f_score", feature=self.frequency, bands=self.bands),
            BandSpec(name="m_score", feature=self.monetary, bands=self.bands),
        ]


RULE_ALGORITHMS = ("rules", "rfm")

AlgorithmConfig = Annotated[
    Union[KMeansParams, BisectingKMeansParams, RulesParams, RfmParams], Field(discriminator="name")
]


class EntityExclusions(StrictModel):
    """Transaction rows that the entity feature step leaves out, besides rows without key, order or date."""

    cancellation_order_prefixes: list[str] = Field(
        default_factory=list, description="an order id that starts with one of these marks a cancellation, e.g. C")
    cancellation_negative_columns: list[str] = Field(
        default_factory=list, description="a negative value in one of these numeric columns marks a cancellation")
    non_positive_amount: bool = Field(True, description="leave out rows whose amount is zero or negative")

    @field_validator("cancellation_order_prefixes")
    @classmethod
    def _non_empty_prefixes(cls, value: list[str]) -> list[str]:
        if any(not prefix for prefix in value):
            raise ValueError("an empty prefix would mark every order as cancelled; remove it")
        return value

    @field_validator("cancellation_negative_columns")
    @classmethod
    def _column_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not COLUMN_NAME_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a column name")
        return value


# Columns of a data set that entity_features builds, after the entity key column.
ENTITY_FEATURE_COLUMNS = (
    ("recency_days", "integer"),
    ("frequency", "long"),
    ("monetary", "double"),
    ("first_purchase", "date"),
    ("last_purchase", "date"),
)


class EntityFeaturesConfig(StrictModel):
    """Settings of the entity feature step, which builds one row per entity from a transactions data set."""

    source_dataset: str = Field(..., description="transactions data set of the same tenant")
    source_version: Optional[int] = Field(None, ge=0, description="Delta version to read; default: the latest")
    entity_key: str = Field(..., description="column that names the entity, for example customer_id")
    order_id: str = Field(..., description="column of the order id; frequency counts distinct values")
    order_time: str = Field(..., description="date or timestamp column of the order")
    amount: str = Field(..., description="expression of the amount per row, for example quantity * unit_price")
    reference_date: Optional[dt.date] = Field(
        None, description="recency is counted in days up to this date; default: the day after the latest "
        "transaction. Rows dated on or after it are left out")
    exclude: EntityExclusions = Field(default_factory=EntityExclusions)

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    @field_validator("source_dataset")
    @classmethod
    def _safe_dataset(cls, value: str) -> str:
        if not IDENTIFIER_PATTERN.match(value):
            raise ValueError("expected a data set name of lowercase letters, digits and underscores")
        return value

    @field_validator("entity_key", "order_id", "order_time")
    @classmethod
    def _column_name(cls, value: str) -> str:
        if not COLUMN_NAME_PATTERN.match(value):
            raise ValueError("expected a column name of letters, digits and underscores")
        if value in RESERVED_COLUMNS or value in dict(ENTITY_FEATURE_COLUMNS):
            raise ValueError(f"{value!r} is a column name that the entity table uses for itself; pick another column")
        return value

    @field_validator("amount")
    @classmethod
    def _amount_parses(cls, value: str) -> str:
        from stratify_spark.rules import parse

        parse(value, "entity_features.amount")
        return value

    def columns(self) -> list[dict[str, Any]]:
        """Return the declared columns of the entity data set: the key (as text) and the feature columns."""
        return [{"name": self.entity_key, "type": "string", "required": True}] + [
            {"name": name, "type": column_type} for name, column_type in ENTITY_FEATURE_COLUMNS
        ]


MAX_SWEEP_FITS = 50


class KSweepConfig(StrictModel):
    """A k sweep: fit every k from k_min to k_max, score each fit, and segment with the k the criterion picks."""

    k_min: int = Field(2, ge=2, le=1000, description="smallest k to fit")
    k_max: int = Field(..., ge=2, le=1000, description="largest k to fit")
    criterion: Literal["silhouette", "calinski_harabasz", "davies_bouldin", "elbow"] = Field(
        "silhouette", description="highest silhouette or Calinski-Harabasz, lowest Davies-Bouldin, or the elbow "
        "of the cost curve")

    @model_validator(mode="after")
    def _range_valid(self) -> "KSweepConfig":
        if self.k_min > self.k_max:
            raise ValueError(f"k_min ({self.k_min}) must not exceed k_max ({self.k_max})")
        if self.k_max - self.k_min + 1 > MAX_SWEEP_FITS:
            raise ValueError(f"the range {self.k_min}..{self.k_max} needs {self.k_max - self.k_min + 1} fits; "
                             f"at most {MAX_SWEEP_FITS} are allowed, so narrow the range")
        if self.criterion == "elbow" and self.k_max - self.k_min < 2:
            raise ValueError("the elbow criterion needs at least three values of k; widen the range")
        return self


class StabilityConfig(StrictModel):
    """Stability check: refit on random subsamples and measure how well each refit agrees with the full fit."""

    subsamples: int = Field(5, ge=2, le=100, description="number of refits")
    fraction: float = Field(0.8, gt=0.0, lt=1.0, description="share of the rows in each subsample, without replacement")
    seed: int = Field(42, description="seed of the subsampling and of the refits")
    min_jaccard: float = Field(0.5, ge=0.0, le=1.0,
                               description="a segment whose mean best Jaccard overlap is below this is unstable")

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class SegmentConfig(StrictModel):
    """Features and algorithm of a segmentation run."""

    features: list[FeatureSpec] = Field(..., min_length=1)
    scaling: Literal["standard", "minmax", "none"] = "standard"
    algorithm: AlgorithmConfig
    k_sweep: Optional[KSweepConfig] = None
    stability: Optional[StabilityConfig] = None

    @model_validator(mode="after")
    def _sweep_and_stability_need_clustering(self) -> "SegmentConfig":
        if self.algorithm.name in ("rules", "rfm") and (self.k_sweep is not None or self.stability is not None):
            raise ValueError(f"k_sweep and stability apply to kmeans and bisecting_kmeans, not to "
                             f"{self.algorithm.name!r}; remove them or change the algorithm")
        return self


class DatasetConfig(StrictModel):
    """The whole config file of one tenant data set."""

    tenant: str
    dataset: str
    # Required unless entity_features builds the data set from another data set.
    source: Optional[SourceConfig] = None
    columns: list[ColumnSpec] = Field(..., min_length=1)
    key: Optional[KeyConfig] = None
    ingest: IngestConfig = IngestConfig()
    segment: Optional[SegmentConfig] = None
    entity_features: Optional[EntityFeaturesConfig] = None

    @model_validator(mode="before")
    @classmethod
    def _derive_entity_columns(cls, data: Any) -> Any:
        """Fill in `columns` and `key` of a data set that entity_features builds, unless they are declared."""
        if not isinstance(data, dict) or not data.get("entity_features"):
            return data
        entity = data["entity_features"]
        entity_key = entity.get("entity_key") if isinstance(entity, dict) else getattr(entity, "entity_key", None)
        if not isinstance(entity_key, str) or not COLUMN_NAME_PATTERN.match(entity_key):
            return data
        derived = [{"name": entity_key, "type": "string", "required": True}] + [
            {"name": name, "type": column_type} for name, column_type in ENTITY_FEATURE_COLUMNS
        ]
        return {"columns": derived, "key": {"columns": [entity_key]}, **data}

    @model_validator(mode="after")
    def _entity_source_and_rules_resolve(self) -> "DatasetConfig":
        if self.entity_features is None and self.source is None:
            raise ConfigError("source: required key is missing; declare the source files, or 'entity_features' "
                              "for a data set built from a transactions data set")
        if self.entity_features is not None:
            _check_entity_data_set(self, self.entity_features)
        if self.segment is not None and self.segment.algorithm.name in RULE_ALGORITHMS:
            _check_rule_run(self, self.segment)
        return self

    @field_validator("tenant", "dataset")
    @classmethod
    def _safe_identifier(cls, value: str) -> str:
        if not IDENTIFIER_PATTERN.match(value):
            raise ValueError(
                "expected 1 to 63 characters of lowercase letters, digits and underscores, starting with a letter"
            )
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> "DatasetConfig":
        names = [column.name for column in self.columns]
        # Spark resolves column names ignoring case, so 'Region' and 'region' are the same column.
        lowered = [name.lower() for name in names]
        duplicated = sorted({name for name in names if lowered.count(name.lower()) > 1})
        if duplicated:
            raise ValueError(f"column names must be unique, ignoring case; repeated: {', '.join(duplicated)}")
        reserved = sorted(name for name in names if name.lower() in RESERVED_COLUMNS)
        if reserved:
            raise ValueError(f"column names {reserved} are reserved for columns the ingest adds; rename them")
        internal = sorted(name for name in names
                          if name.lower() in INGEST_WORK_COLUMNS or name.lower().startswith(INGEST_WORK_PREFIXES))
        if internal:
            raise ValueError(
                f"column names {internal} are used by the ingest for its own work columns; rename them and keep "
                f"the file's header with 'source', for example {{name: {internal[0].strip('_')}_value, "
                f"source: {internal[0]}}}"
            )

        by_name = {column.name: column for column in self.columns}
        if self.key is not None:
            for key_column in (self.key.columns or []) + ([self.key.order_by] if self.key.order_by else []):
                if key_column not in by_name:
                    raise ValueError(f"key column {key_column!r} is not a declared column; declared: {', '.join(names)}")

        if self.segment is not None:
            if self.key is None:
                raise ValueError("'segment' needs a 'key' (declared columns or 'generate: true') to name the rows")
            feature_names = [feature.name for feature in self.segment.features]
            for feature in feature_names:
                if feature not in by_name:
                    raise ValueError(f"feature {feature!r} is not a declared column; declared: {', '.join(names)}")
                if not by_name[feature].is_numeric:
                    raise ValueError(
                        f"feature {feature!r} has type {by_name[feature].type}; features must be integer, "
                        "long, double or decimal"
                    )
            if len(set(feature_names)) != len(feature_names):
                raise ValueError("each feature may be listed once")
        return self


RESERVED_COLUMNS = frozenset({"record_key", "source_file", "ingest_id", "ingested_at"})
# Work columns of the ingest (casting, reader, keys, ingest). A declared column of the same name would
# make them ambiguous. tests/test_config.py checks this list against those modules' constants.
INGEST_WORK_COLUMNS = frozenset({
    "reason", "reason_code", "_corrupt_record", "_row_position", "_raw_values", "_is_existing_key",
    "_duplicate_rank", "_content_hash",
})
INGEST_WORK_PREFIXES = ("_raw_", "__check_")


def _check_entity_data_set(config: DatasetConfig, entity: EntityFeaturesConfig) -> None:
    """Raise ConfigError unless a data set built by entity_features declares nothing that contradicts it."""
    if config.source is not None:
        raise ConfigError("source: a data set built by entity_features has no source files; remove 'source'")
    if entity.source_dataset == config.dataset:
        raise ConfigError(f"entity_features.source_dataset: {entity.source_dataset!r} is this data set itself; "
                          "name the transactions data set")
    expected = [(column["name"], column["type"]) for column in entity.columns()]
    declared = [(column.name, column.type) for column in config.columns]
    if declared != expected:
        raise ConfigError(f"columns: a data set built by entity_features has the columns {expected}, but the config "
                          f"declares {declared}; remove 'columns' to have them filled in")
    if config.key is None or config.key.generate or config.key.columns != [entity.entity_key]:
        raise ConfigError(f"key: a data set built by entity_features is keyed by {entity.entity_key!r}; remove 'key' "
                          "to have it filled in")


def _check_rule_run(config: DatasetConfig, segment: SegmentConfig) -> None:
    """Parse and type-check every rule of a rules or rfm run against the declared columns and band scores.

    Raises ConfigError (a RuleError for rule text) naming the key, the rule, the
    position and the fix, so that a bad rule fails before any Spark work.
    """
    from stratify_spark.rules import NUMBER, compile_condition, type_category

    params = segment.algorithm
    for feature in segment.features:
        if feature.log1p or feature.missing != "fail":
            raise ConfigError(
                f"segment.features: feature {feature.name!r} sets log1p or missing, which rule runs do not use: they "
                "keep every row and profile values as they are. Remove the setting"
            )

    by_name = {column.name: column for column in config.columns}
    numeric = sorted(name for name, column in by_name.items() if column.is_numeric)
    bands = params.band_specs()
    if isinstance(params, RfmParams):
        band_keys = ["segment.algorithm.recency", "segment.algorithm.frequency", "segment.algorithm.monetary"]
    else:
        band_keys = [f"segment.algorithm.bands[{index}].feature" for index in range(len(bands))]
    for band, key in zip(bands, band_keys):
        column = by_name.get(band.feature)
        if column is None or not column.is_numeric:
            raise ConfigError(f"{key}: {band.feature!r} is not a declared numeric column; numeric columns: "
                              f"{', '.join(numeric) or '(none)'}")
        if band.name in by_name:
            raise ConfigError(f"{key}: band name {band.name!r} is already a column of the data set; rename the band")

    column_types = {name: type_category(column.type) for name, column in by_name.items()}
    column_types.update({band.name: NUMBER for band in bands})
    for index, rule in enumerate(params.segments):
        compile_condition(rule.when, column_types, f"segment.algorithm.segments[{index}].when (rule '{rule.name}')")


def _reject_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in mapping:
            raise ConfigError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}; keep one of them")
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _reject_duplicate_keys)


def _allowed_keys(model: Any, location: tuple[Any, ...]) -> Optional[list[str]]:
    """Return the field names allowed at the mapping that contains `location`, if it can be found."""
    current = model
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return None
        if part not in fields:
            # Discriminated unions add the tag value as a location step.
            for candidate in (KMeansParams, BisectingKMeansParams, RulesParams, RfmParams):
                if candidate.model_fields["name"].annotation.__args__[0] == part:
                    current = candidate
                    break
            else:
                return None
            continue
        annotation = fields[part].annotation
        current = _model_in_annotation(annotation)
        if current is None:
            return None
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else None


def _model_in_annotation(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()) or ():
        found = _model_in_annotation(argument)
        if found is not None:
            return found
    return None


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid config ({error.error_count()} problem(s)):"]
    for item in error.errors():
        location = tuple(item["loc"])
        # Drop the tag that pydantic adds after a discriminated union ('algorithm.kmeans.k'),
        # so the path is the one written in the file ('algorithm.k').
        path = [part for index, part in enumerate(location)
                if not (index > 0 and location[index - 1] == "algorithm" and isinstance(part, str))]
        key = ".".join(str(part) for part in path) or "(top level)"
        if not location and item["type"] not in ("extra_forbidden", "missing"):
            lines.append(f"  - {item['msg'].removeprefix('Value error, ')}")
            continue
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(DatasetConfig, location)
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  - {key}: unknown key{hint}")
        elif item["type"] == "missing":
            lines.append(f"  - {key}: required key is missing")
        else:
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"  - {key}: invalid value {item['input']!r}: {message}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<config>") -> DatasetConfig:
    """Validate an already-parsed YAML document and return the typed config."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        return DatasetConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None
    except ConfigError as error:  # raised by validators that name the key themselves, such as rule checks
        raise ConfigError(f"{source}: invalid config (1 problem(s)):\n  - {error}") from None


def load_config(path: str | Path) -> DatasetConfig:
    """Read and validate one YAML config file; raise ConfigError naming the file on any problem."""
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {config_path}; pass the path of a YAML file such as conf/demo.yaml") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {config_path}: {error}") from None

    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as error:
        raise ConfigError(f"{config_path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path}: not valid YAML: {error}") from None
    return parse_config(data, str(config_path))


def apply_overrides(config: DatasetConfig, source: str, algorithm: Optional[str] = None,
                    k: Optional[int] = None) -> DatasetConfig:
    """Return the config with command-line overrides of the algorithm and k, validated again."""
    if algorithm is None and k is None:
        return config
    if config.segment is None:
        raise ConfigError(f"{source}: --algorithm and --k need a 'segment' section in the config")
    data = config.model_dump(exclude_none=True)
    current = data["segment"]["algorithm"]
    if algorithm is not None and algorithm != current["name"]:
        # Parameters of one algorithm do not all exist in the other; keep the shared ones.
        shared = {"k", "seed", "max_iter", "distance_measure"}
        current = {key: value for key, value in current.items() if key in shared}
        current["name"] = algorithm
    if k is not None:
        current["k"] = k
    data["segment"]["algorithm"] = current
    return parse_config(data, f"{source} (with command-line overrides)")


def with_k_sweep(config: DatasetConfig, source: str, k_range: str) -> DatasetConfig:
    """Return the config with segment.k_sweep's range set from "K_MIN:K_MAX", validated again."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", k_range)
    if match is None:
        raise ConfigError(f"{source}: --k-sweep {k_range!r} is invalid; expected K_MIN:K_MAX, for example 2:10")
    if config.segment is None:
        raise ConfigError(f"{source}: --k-sweep needs a 'segment' section in the config")
    data = config.model_dump(exclude_none=True)
    sweep = data["segment"].get("k_sweep", {})
    sweep.update({"k_min": int(match.group(1)), "k_max": int(match.group(2))})
    data["segment"]["k_sweep"] = sweep
    return parse_config(data, f"{source} (with --k-sweep)")


def with_cut_points_from(config: DatasetConfig, source: str, run_id: str) -> DatasetConfig:
    """Return the config with the rules or rfm run's cut points taken from run `run_id`, validated again."""
    if config.segment is None or config.segment.algorithm.name not in RULE_ALGORITHMS:
        raise ConfigError(f"{source}: --cut-points-from needs segment.algorithm.name rules or rfm")
    data = config.model_dump(exclude_none=True)
    data["segment"]["algorithm"]["cut_points_from"] = run_id
    return parse_config(data, f"{source} (with --cut-points-from)")
