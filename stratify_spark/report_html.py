"""Render a run (and optionally a comparison) as one self-contained HTML page.

The page has inline CSS and inline SVG charts and refers to nothing outside
itself: no script, no stylesheet or font link, no image source and no URL, so
it opens the same from a mail attachment as from a shared folder. Every text
from the tables passes through html.escape.
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from typing import Any, Iterable, Optional, Sequence

from stratify_spark.report import (
    ComparisonSummary, Migration, RunSummary, Segment, segment_title,
)
from stratify_spark.report_charts import Bar, HeatCell, bar_chart, diverging_fill, heat_map, share_fill
from stratify_spark.report_i18n import Texts

# The largest-moves list names at most MAX_FLOWS flows between two segments, then at most
# MAX_ENTRY_EXIT_FLOWS flows of rows that are in one run only, so new rows do not crowd out the moves.
MAX_FLOWS = 6
MAX_ENTRY_EXIT_FLOWS = 3
# Parameters holding the rule list, which the segment table already shows rule by rule.
RULE_PARAMETERS = ("segments", "rules")
# Parameters that the facts table already shows on their own row.
SHOWN_PARAMETERS = ("name",)
MAX_PARAMETER_CHARS = 160

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1a1a1a; background: #ffffff; margin: 24px; max-width: 1240px; font-size: 14px; line-height: 1.45; }
h1 { font-size: 26px; margin: 0 0 4px 0; }
h2 { font-size: 19px; margin: 32px 0 6px 0; border-bottom: 1px solid #d0d0d0; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 6px 0; }
p.note { color: #4a4a4a; margin: 4px 0 12px 0; max-width: 900px; }
p.subtitle { font-size: 16px; margin: 0; }
p.generated { color: #6a6a6a; margin: 2px 0 0 0; font-size: 12px; }
.pair { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.chart text { font-size: 13px; }
table { border-collapse: collapse; margin: 6px 0 12px 0; }
th, td { border: 1px solid #d8d8d8; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.rule { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
tr.overall td { background: #fafafa; font-style: italic; }
ul.flows li { margin: 3px 0; }
table.facts th { width: 280px; text-align: left; }
"""


def render_report(run: RunSummary, texts: Texts, comparison: Optional[ComparisonSummary] = None,
                  generated_at: Optional[dt.datetime] = None) -> str:
    """Return the report page for `run`, with a "what changed" part when `comparison` is given."""
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc)
    recency = run.recency_features
    labels = {segment.segment_id: segment_label(segment, texts, recency) for segment in run.segments}

    sections = [
        _header(run, texts, generated_at),
        _sizes_section(run, texts, labels),
        _profiles_section(run, texts, labels),
    ]
    if comparison is not None:
        sections.append(_comparison_section(run, comparison, texts))
    sections.append(_facts_section(run, texts))

    title = f"{texts('title')}: {run.tenant}/{run.dataset} {run.run_id}"
    return (
        f'<!DOCTYPE html>\n<html lang="{escape(texts.lang)}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def segment_label(segment: Segment, texts: Texts, recency_features: set[str]) -> str:
    """Return 'key · name' for charts and lists, for example 'S1 · champions'."""
    return f"{segment.key} · {segment_title(segment, texts, recency_features)}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] = (),
           row_classes: Sequence[str] = (), cell_classes: Sequence[str] = ()) -> str:
    """Render a table; `numeric` marks right-aligned columns and every value is escaped."""
    def css(index: int) -> str:
        names = []
        if index < len(numeric) and numeric[index]:
            names.append("num")
        if index < len(cell_classes) and cell_classes[index]:
            names.append(cell_classes[index])
        return f' class="{" ".join(names)}"' if names else ""

    head = "".join(f"<th{css(index)}>{escape(str(header))}</th>" for index, header in enumerate(headers))
    body = []
    for row_index, row in enumerate(rows):
        row_class = row_classes[row_index] if row_index < len(row_classes) else ""
        row_css = f' class="{row_class}"' if row_class else ""
        cells = "".join(f"<td{css(index)}>{escape(str(value))}</td>" for index, value in enumerate(row))
        body.append(f"<tr{row_css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _facts_table(facts: Iterable[tuple[str, Any]]) -> str:
    """Render label and value pairs as a two-column table with the labels as row headers."""
    rows = "".join(f"<tr><th>{escape(str(label))}</th><td>{escape(str(value))}</td></tr>" for label, value in facts)
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def _header(run: RunSummary, texts: Texts, generated_at: dt.datetime) -> str:
    stamp = generated_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return (
        f"<h1>{escape(texts('title'))}</h1>\n"
        f'<p class="subtitle">{escape(texts("subtitle", tenant=run.tenant, dataset=run.dataset, run_id=run.run_id))}'
        f"</p>\n"
        f'<p class="generated">{escape(texts("generated", time=stamp))}</p>'
    )


def _sizes_section(run: RunSummary, texts: Texts, labels: dict[int, str]) -> str:
    largest = max((segment.size for segment in run.segments), default=0) or 1
    bars = [
        Bar(label=labels[segment.segment_id], fraction=segment.size / largest,
            text=f"{texts.integer(segment.size)} · {texts.percent(segment.share)}",
            tooltip=f"{labels[segment.segment_id]}: {texts.integer(segment.size)} {texts('rows').lower()}, "
                    f"{texts.percent(segment.share)}")
        for segment in run.segments
    ]
    chart = bar_chart(bars, texts("section_sizes"))

    with_status = any(segment.key_status for segment in run.segments)
    headers = [texts("key"), texts("name"), texts("size"), texts("share")]
    numeric = [False, False, True, True]
    if run.is_rule_run:
        headers.append(texts("rule"))
        numeric.append(False)
    if with_status:
        headers.append(texts("segment_status"))
    rows = []
    for segment in run.segments:
        row = [segment.key, segment_title(segment, texts, run.recency_features), texts.integer(segment.size),
               texts.percent(segment.share)]
        if run.is_rule_run:
            row.append(texts("default_segment") if segment.is_default or not segment.rule else segment.rule)
        if with_status:
            row.append(_status_text(segment.key_status, texts))
        rows.append(row)
    if run.retired_keys:
        rows.extend([key, "", "", "", *([""] if run.is_rule_run else []), texts("status_retired")]
                    for key in run.retired_keys)
    cell_classes = ["", "", "", "", "rule"] if run.is_rule_run else []
    table = _table(headers, rows, numeric, cell_classes=cell_classes)

    return (
        f"<h2>{escape(texts('section_sizes'))}</h2>\n"
        f'<p class="note">{escape(texts("section_sizes_note"))}</p>\n'
        f'<div class="pair">{chart}{table}</div>'
    )


def _status_text(status: Optional[str], texts: Texts) -> str:
    if not status:
        return ""
    key = f"status_{status}"
    return texts(key) if key in texts.messages else status


def _signed(texts: Texts, value: Optional[float], decimals: int = 2) -> str:
    """Format a number with a + sign when it is positive, and a value that rounds to zero as 0."""
    if value is not None and round(value, decimals) == 0:
        value = 0.0
    text = texts.number(value, decimals)
    return f"+{text}" if value is not None and value > 0 else text


def _profiles_section(run: RunSummary, texts: Texts, labels: dict[int, str]) -> str:
    features = run.features
    # Empty rule segments have no profile, so they have no row here.
    profiled = [segment for segment in run.segments if segment.features]
    cells = []
    for segment in profiled:
        by_feature = {stats.feature: stats for stats in segment.features}
        row = []
        for feature in features:
            stats = by_feature.get(feature)
            if stats is None:
                row.append(HeatCell("", share_fill(None), f"{labels[segment.segment_id]}: {feature}"))
                continue
            tooltip = "; ".join(part for part in (
                f"{labels[segment.segment_id]} · {feature}",
                f"{texts('mean')} {texts.significant(stats.mean)}",
                f"{texts('overall_mean')} {texts.significant(stats.overall_mean)}",
                f"{texts('median')} {texts.significant(stats.median)}",
                f"{texts('range')} {texts.significant(stats.p25)}–{texts.significant(stats.p75)}",
                f"{texts('null_rate')} {texts.percent(stats.null_rate)}" if stats.null_rate else "",
                f"{texts('centre')} {texts.significant(stats.centre)}" if stats.centre is not None else "",
                f"{texts('z_score')} {_signed(texts, stats.z_score)}",
            ) if part)
            row.append(HeatCell(_signed(texts, stats.z_score), diverging_fill(stats.z_score), tooltip))
        cells.append(row)
    chart = heat_map([labels[segment.segment_id] for segment in profiled], features, cells,
                     texts("section_profiles"))

    overall = {}
    for segment in profiled:
        for stats in segment.features:
            overall.setdefault(stats.feature, stats.overall_mean)
    rows = [[texts("overall"), *[texts.significant(overall.get(feature)) for feature in features]]]
    for segment in profiled:
        by_feature = {stats.feature: stats for stats in segment.features}
        rows.append([segment.key, *[texts.significant(by_feature[feature].mean) if feature in by_feature else ""
                                    for feature in features]])
    table = _table([f"{texts('segment')} ({texts('mean')})", *features], rows,
                   [False, *[True] * len(features)], row_classes=["overall"])

    return (
        f"<h2>{escape(texts('section_profiles'))}</h2>\n"
        f'<p class="note">{escape(texts("section_profiles_note"))}</p>\n'
        f'<div class="pair">{chart}{table}</div>'
    )


def _facts_section(run: RunSummary, texts: Texts) -> str:
    chosen = next((metric for metric in run.metrics if metric.name == "k_chosen"), None)
    if chosen is not None and chosen.value is not None:
        # The segment job stores why it used this k (the k sweep's criterion, or the config) as the detail.
        k_text = texts("k_why_chosen", k_chosen=texts.integer(chosen.value), reason=chosen.detail or "–",
                       k_produced=run.k_produced)
    else:
        k_key = "k_why_rules" if run.is_rule_run else "k_why_clustering"
        k_text = texts(k_key, k_requested=run.k_requested, k_produced=run.k_produced,
                       rules=(run.k_requested or 1) - 1)
    if run.k_produced is not None and run.k_requested is not None and run.k_produced < run.k_requested:
        k_text += texts("k_why_short")
    facts = [
        (texts("tenant"), run.tenant),
        (texts("dataset"), run.dataset),
        (texts("run_id"), run.run_id),
        (texts("status"), _status_text(run.status, texts)),
        (texts("data_version"), run.data_version),
        (texts("algorithm"), run.algorithm),
        (texts("parameters"), _parameters_text(run.parameters)),
        (texts("k"), k_text),
        (texts("rows_input"), texts.integer(run.rows_input)),
        (texts("rows_used"), texts.integer(run.rows_used)),
        (texts("rows_dropped"), texts.integer(run.rows_dropped)),
        (texts("finished_at"), run.finished_at.strftime("%Y-%m-%d %H:%M:%S") if run.finished_at else "–"),
        (texts("seconds"), texts("seconds_value", value=texts.number(run.seconds, 1))),
    ]
    parts = [f"<h2>{escape(texts('section_facts'))}</h2>", _facts_table(facts)]

    if run.cut_points:
        parts.append(_table(
            [texts("band"), texts("feature"), texts("cut_points")],
            [(band.band + (" ↓" if band.descending else ""), band.feature,
              texts.join([texts.significant(value, 6) for value in band.cut_points])
              + (" " + texts("cut_points_from", run_id=band.source_run_id) if band.source_run_id else ""))
             for band in run.cut_points],
        ))

    if run.metrics:
        parts.append(f"<h3>{escape(texts('section_metrics'))}</h3>")
        parts.append(_table([texts("metric"), texts("value"), texts("meaning")],
                            [(metric.name, _metric_value(texts, metric.value), _metric_meaning(texts, metric))
                             for metric in run.metrics], [False, True, False]))

    parts.append(f"<h3>{escape(texts('section_exclusions'))}</h3>")
    parts.append(_exclusions(run, texts))
    return "\n".join(parts)


def _parameters_text(parameters: dict[str, Any]) -> str:
    items = []
    for name, value in parameters.items():
        if name in SHOWN_PARAMETERS or name in RULE_PARAMETERS and isinstance(value, list):
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if len(text) > MAX_PARAMETER_CHARS:
            text = text[: MAX_PARAMETER_CHARS - 1] + "…"
        items.append(f"{name} = {text}")
    return ", ".join(items)


def _metric_value(texts: Texts, value: Optional[float]) -> str:
    if value is not None and float(value).is_integer():
        return texts.integer(value)
    return texts.number(value, 4)


def _metric_meaning(texts: Texts, metric) -> str:
    """Return the metric's description in the report language, else the detail stored with it."""
    for prefix in ("rows_matching.", "rows_assigned."):
        if metric.name.startswith(prefix):
            return texts(f"metric_{prefix[:-1]}", name=metric.name[len(prefix):])
    key = f"metric_{metric.name}"
    if key not in texts.messages:
        return metric.detail or ""
    # Details end in the value the description needs, after a colon: "distance: cosine", "...: [1, 3]".
    detail = (metric.detail or "").rsplit(": ", 1)[-1]
    return texts(key, detail=detail) if "{detail}" in texts.messages[key] else texts(key)


def _exclusions(run: RunSummary, texts: Texts) -> str:
    build = run.entity_build
    if build is None:
        return f'<p class="note">{escape(texts("exclusions_none"))}</p>'
    note = texts(
        "exclusions_note", data_version=run.data_version, build_id=build.build_id,
        source_dataset=build.source_dataset, source_version=build.source_version,
        reference_date=build.reference_date.isoformat() if build.reference_date else "–",
        rows_read=texts.integer(build.rows_read), rows_used=texts.integer(build.rows_used),
        rows_excluded=texts.integer(build.rows_excluded),
    )
    rows = [(_reason_text(reason, texts), reason, texts.integer(count))
            for reason, count in sorted(build.exclusion_counts.items(), key=lambda item: -item[1])]
    table = _table([texts("reason"), texts("code"), texts("rows")], rows, [False, False, True]) if rows else ""
    return f'<p class="note">{escape(note)}</p>\n{table}'


def _reason_text(reason: str, texts: Texts) -> str:
    key = f"reason_{reason}"
    return texts(key) if key in texts.messages else reason


def _comparison_section(run: RunSummary, comparison: ComparisonSummary, texts: Texts) -> str:
    recency = run.recency_features
    labels_a = {segment.segment_id: segment_label(segment, texts, recency) for segment in comparison.segments_a}
    labels_b = {segment.segment_id: segment_label(segment, texts, recency) for segment in comparison.segments_b}
    run_a, run_b = comparison.run_a, comparison.run_b

    facts = _facts_table([
        (texts("compare_id"), comparison.compare_id),
        (texts("run_a"), f"{run_a} ({texts('data_version').lower()} {comparison.data_version_a}, "
                         f"{comparison.algorithm_a}, {texts.integer(comparison.rows_a)} {texts('rows').lower()})"),
        (texts("run_b"), f"{run_b} ({texts('data_version').lower()} {comparison.data_version_b}, "
                         f"{comparison.algorithm_b}, {texts.integer(comparison.rows_b)} {texts('rows').lower()})"),
        (texts("rows_both"), texts.integer(comparison.rows_both)),
        (texts("rows_only_a"), texts.integer(comparison.rows_only_a)),
        (texts("rows_only_b"), texts.integer(comparison.rows_only_b)),
        (texts("adjusted_rand_index"), texts.number(comparison.adjusted_rand_index, 3)),
        (texts("adjusted_mutual_info"), texts.number(comparison.adjusted_mutual_info, 3)),
    ])

    return "\n".join([
        f"<h2>{escape(texts('section_compare', run_a=run_a))}</h2>",
        facts,
        f"<h3>{escape(texts('section_flows'))}</h3>",
        _flows_list(comparison, texts, labels_a, labels_b),
        f"<h3>{escape(texts('section_migration'))}</h3>",
        f'<p class="note">{escape(texts("section_migration_note", run_a=run_a, run_b=run_b))}</p>',
        _migration_heat_map(comparison, texts, labels_a, labels_b),
        _segment_changes(comparison, texts, labels_a, labels_b),
    ])


def _migration_label(segment_id: Optional[int], key: Optional[str], labels: dict[int, str]) -> str:
    if segment_id is not None and segment_id in labels:
        return labels[segment_id]
    return key or f"#{segment_id}"


def _migration_heat_map(comparison: ComparisonSummary, texts: Texts, labels_a: dict[int, str],
                        labels_b: dict[int, str]) -> str:
    ids_a = sorted({m.segment_id_a for m in comparison.migrations if m.segment_id_a is not None} | set(labels_a))
    ids_b = sorted({m.segment_id_b for m in comparison.migrations if m.segment_id_b is not None} | set(labels_b))
    keys_a = {m.segment_id_a: m.segment_key_a for m in comparison.migrations}
    keys_b = {m.segment_id_b: m.segment_key_b for m in comparison.migrations}
    has_only_b = any(m.segment_id_a is None for m in comparison.migrations)
    has_only_a = any(m.segment_id_b is None for m in comparison.migrations)
    rows_a: list[Optional[int]] = [*ids_a, *([None] if has_only_b else [])]
    columns_b: list[Optional[int]] = [*ids_b, *([None] if has_only_a else [])]

    not_in_a = texts("not_in_run", run_id=comparison.run_a)
    not_in_b = texts("not_in_run", run_id=comparison.run_b)
    row_labels = [_migration_label(i, keys_a.get(i), labels_a) if i is not None else not_in_a for i in rows_a]
    column_labels = [_migration_label(i, keys_b.get(i), labels_b) if i is not None else not_in_b for i in columns_b]
    counts = {(m.segment_id_a, m.segment_id_b): m for m in comparison.migrations}

    cells = []
    for row_index, id_a in enumerate(rows_a):
        row = []
        for column_index, id_b in enumerate(columns_b):
            migration = counts.get((id_a, id_b))
            rows = migration.rows if migration else 0
            if migration is not None:
                share = migration.share_of_a
            else:
                # An empty cell of a run-a segment is 0% of it. The "not in run a" row has no share.
                share = 0.0 if id_a is not None else None
            tooltip = (f"{row_labels[row_index]} → {column_labels[column_index]}: {texts.integer(rows)} "
                       f"{texts('rows').lower()}" + (f", {texts.percent(share)}" if share is not None else ""))
            row.append(HeatCell(texts.integer(rows) if rows else "", share_fill(share) if rows else "#ffffff",
                                tooltip))
        cells.append(row)
    return heat_map(row_labels, column_labels, cells, texts("section_migration"), cell_width=96)


def _flows_list(comparison: ComparisonSummary, texts: Texts, labels_a: dict[int, str],
                labels_b: dict[int, str]) -> str:
    """List the largest flows between segments, then those of rows in one run only, in words, largest first."""
    moves = sorted((m for m in comparison.migrations if _is_move(m)), key=lambda m: -m.rows)
    between = [m for m in moves if m.segment_id_a is not None and m.segment_id_b is not None]
    entries_exits = [m for m in moves if m.segment_id_a is None or m.segment_id_b is None]
    if not moves:
        return f'<p class="note">{escape(texts("flows_none"))}</p>'

    items = []
    for migration in between[:MAX_FLOWS] + entries_exits[:MAX_ENTRY_EXIT_FLOWS]:
        from_segment = _migration_label(migration.segment_id_a, migration.segment_key_a, labels_a)
        to_segment = _migration_label(migration.segment_id_b, migration.segment_key_b, labels_b)
        rows = texts.integer(migration.rows)
        share = texts.percent(migration.share_of_a)
        if migration.segment_id_a is None:
            text = texts("flow_joined", rows=rows, to_segment=to_segment, run_a=comparison.run_a)
        elif migration.segment_id_b is None:
            text = texts("flow_left", rows=rows, share=share, from_segment=from_segment, run_b=comparison.run_b)
        else:
            text = texts("flow_moved", rows=rows, share=share, from_segment=from_segment, to_segment=to_segment)
        items.append(f"<li>{escape(text)}</li>")
    return f'<ul class="flows">{"".join(items)}</ul>'


def _is_move(migration: Migration) -> bool:
    """Tell whether the rows changed segment: different keys, or a side where they were not in the run."""
    if migration.segment_id_a is None or migration.segment_id_b is None:
        return True
    if migration.segment_key_a is not None and migration.segment_key_b is not None:
        return migration.segment_key_a != migration.segment_key_b
    # NOTE: without keys, ids of two runs are compared as if they named the same segments.
    return migration.segment_id_a != migration.segment_id_b


def _segment_changes(comparison: ComparisonSummary, texts: Texts, labels_a: dict[int, str],
                     labels_b: dict[int, str]) -> str:
    if not comparison.segment_changes:
        return ""
    show_drift = any(change.centre_drift is not None for change in comparison.segment_changes)
    headers = [texts("segment"), texts("size_a", run_id=comparison.run_a), texts("size_b", run_id=comparison.run_b),
               texts("size_change"), texts("share_change")] + ([texts("centre_drift")] if show_drift else [])
    rows = []
    for change in comparison.segment_changes:
        label = (labels_b.get(change.segment_id_b) if change.segment_id_b is not None
                 else labels_a.get(change.segment_id_a)) or change.segment_key
        size_change = change.size_change
        row = [label, texts.integer(change.size_a), texts.integer(change.size_b),
               (f"+{texts.integer(size_change)}" if size_change and size_change > 0 else texts.integer(size_change)),
               _signed(texts, None if change.share_change is None else change.share_change * 100)]
        if show_drift:
            row.append(texts.number(change.centre_drift, 3))
        rows.append(row)
    return (f"<h3>{escape(texts('section_segment_changes'))}</h3>\n"
            + _table(headers, rows, [False, True, True, True, True, True]))
