"""Text and number formats of the HTML run report, in English and Brazilian Portuguese.

Every label the report prints comes from `MESSAGES`, so a language is complete
when it has every key of English; `test_report.py` checks that it does.
Numbers follow the language: 1,234.56 and 20.8% in English, 1.234,56 and
20,8% in pt-BR.
"""

from __future__ import annotations

import math
from typing import Optional

from stratify_spark.errors import ConfigError

LANGUAGES = ("en", "pt-BR")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Segmentation report",
        "subtitle": "{tenant} / {dataset}, run {run_id}",
        "generated": "Generated from the result tables at {time} UTC.",
        "section_sizes": "Segment sizes",
        "section_sizes_note": "Rows in each segment and their share of all segmented rows.",
        "section_profiles": "What sets each segment apart",
        "section_profiles_note": (
            "Each cell is the segment mean of a feature against the mean of all rows, in standard deviations "
            "(z-score). Red is above the mean, blue below. Hover a cell for the values; the table beside it "
            "shows the segment means."
        ),
        "section_facts": "Run facts",
        "section_metrics": "Quality metrics",
        "section_exclusions": "Excluded rows",
        "section_compare": "What changed since run {run_a}",
        "section_migration": "Where rows moved",
        "section_migration_note": (
            "Rows: segment in run {run_a}. Columns: segment in run {run_b}. Each cell counts the rows that were "
            "in both segments; the colour is the share of the row's segment in run {run_a}."
        ),
        "section_flows": "Largest moves",
        "section_segment_changes": "Segment size changes",
        "segment": "Segment",
        "key": "Key",
        "name": "Name",
        "rule": "Rule",
        "size": "Size",
        "share": "Share",
        "feature": "Feature",
        "overall": "All rows",
        "mean": "mean",
        "overall_mean": "mean of all rows",
        "median": "median",
        "range": "p25 to p75",
        "null_rate": "missing and imputed",
        "z_score": "z-score",
        "centre": "segment centre",
        "not_in_run": "not in run {run_id}",
        "tenant": "Tenant",
        "dataset": "Data set",
        "run_id": "Run id",
        "status": "Status",
        "data_version": "Data version",
        "algorithm": "Algorithm",
        "parameters": "Parameters",
        "k": "Segments (k)",
        "k_why_clustering": "{k_requested} requested in the config (algorithm.k), {k_produced} produced",
        "k_why_rules": (
            "{k_requested} declared: {rules} rule(s) and the default segment; {k_produced} received rows"
        ),
        "k_why_chosen": "{k_chosen} used ({reason}), {k_produced} produced",
        "k_why_short": " (the other requested segments received no rows)",
        "rows_input": "Rows read",
        "rows_used": "Rows segmented",
        "rows_dropped": "Rows dropped (missing feature under the 'drop' policy)",
        "finished_at": "Finished at",
        "seconds": "Run time",
        "seconds_value": "{value} s",
        "metric": "Metric",
        "value": "Value",
        "meaning": "Meaning",
        "exclusions_note": (
            "The data set version {data_version} was built by feature build {build_id} from {source_dataset} "
            "version {source_version}, with recency counted up to {reference_date}. It read {rows_read} rows, "
            "used {rows_used} and excluded {rows_excluded}."
        ),
        "exclusions_none": (
            "No feature build wrote this data version, so the only rows left out before the run are those that "
            "the ingest quarantined (table stratify.quarantine) and the rows dropped above."
        ),
        "reason": "Reason",
        "list_separator": ", ",
        "cut_points_from": "(taken from run {run_id})",
        "code": "Code",
        "band": "Band",
        "cut_points": "Cut points (↓: low values score high)",
        "rows": "Rows",
        "compare_id": "Comparison id",
        "run_a": "Earlier run",
        "run_b": "Later run",
        "rows_both": "Rows in both runs",
        "rows_only_a": "Rows only in the earlier run",
        "rows_only_b": "Rows only in the later run",
        "adjusted_rand_index": "Adjusted Rand index (1 = same segments, 0 = chance)",
        "adjusted_mutual_info": "Adjusted mutual information (1 = same segments, 0 = chance)",
        "flow_moved": "{rows} rows ({share} of {from_segment}) moved from {from_segment} to {to_segment}.",
        "flow_left": "{rows} rows ({share} of {from_segment}) of {from_segment} are not in run {run_b}.",
        "flow_joined": "{rows} rows in {to_segment} were not in run {run_a}.",
        "flows_none": "No rows changed segment.",
        "size_a": "Size in {run_id}",
        "size_b": "Size in {run_id}",
        "size_change": "Change",
        "share_change": "Share change (points)",
        "centre_drift": "Centre drift",
        "segment_status": "Key status",
        "status_new": "new",
        "status_kept": "kept",
        "status_split": "split",
        "status_merged": "merged",
        "status_retired": "retired",
        "status_succeeded": "succeeded",
        "desc_high": "high {feature}",
        "desc_low": "low {feature}",
        "desc_recent": "recent",
        "desc_not_recent": "not recent",
        "desc_somewhat_high": "somewhat high {feature}",
        "desc_somewhat_low": "somewhat low {feature}",
        "desc_somewhat_recent": "fairly recent",
        "desc_somewhat_not_recent": "less recent",
        "desc_average": "close to average",
        "default_segment": "(default: no rule matched)",
        "reason_missing_entity_key": "missing customer or entity key",
        "reason_missing_order_id": "missing order id",
        "reason_missing_order_date": "missing order date",
        "reason_after_reference_date": "order on or after the reference date",
        "reason_cancellation": "cancellation",
        "reason_missing_amount": "amount could not be computed",
        "reason_non_positive_amount": "amount zero or negative",
        "metric_silhouette": "Silhouette (-1 to 1, higher means better separated segments); distance: {detail}",
        "metric_training_cost": "Sum of squared distances to the nearest centre, in scaled feature space",
        "metric_iterations": "Iterations the algorithm ran",
        "metric_k_requested": "Segments requested",
        "metric_k_produced": "Segments that received at least one row",
        "metric_rows_input": "Rows in the data set at the pinned version",
        "metric_rows_used": "Rows assigned to a segment",
        "metric_rows_dropped": "Rows dropped for a missing feature",
        "metric_rows_multiple_matches": "Rows that matched more than one rule (the first match wins)",
        "metric_rows_default": "Rows that matched no rule",
        "metric_rows_matching": "Rows whose rule {name} is true, before the first match wins",
        "metric_rows_assigned": "Rows assigned to {name}",
        "metric_k_chosen": "Segments the run used; the reason is in the run facts",
        "metric_stability_ari_mean": "Mean adjusted Rand index of refits on subsamples against the full fit",
        "metric_stability_ari_min": "Lowest adjusted Rand index of refits on subsamples against the full fit",
        "metric_unstable_segments": "Segments that refits on subsamples do not find again as one group: {detail}",
    },
    "pt-BR": {
        "title": "Relatório de segmentação",
        "subtitle": "{tenant} / {dataset}, execução {run_id}",
        "generated": "Gerado a partir das tabelas de resultado em {time} UTC.",
        "section_sizes": "Tamanho dos segmentos",
        "section_sizes_note": "Linhas em cada segmento e sua participação no total de linhas segmentadas.",
        "section_profiles": "O que diferencia cada segmento",
        "section_profiles_note": (
            "Cada célula é a média de uma variável no segmento comparada à média de todas as linhas, em "
            "desvios-padrão (escore z). Vermelho fica acima da média, azul abaixo. Passe o mouse sobre uma "
            "célula para ver os valores; a tabela ao lado mostra as médias dos segmentos."
        ),
        "section_facts": "Dados da execução",
        "section_metrics": "Métricas de qualidade",
        "section_exclusions": "Linhas excluídas",
        "section_compare": "O que mudou desde a execução {run_a}",
        "section_migration": "Para onde as linhas foram",
        "section_migration_note": (
            "Linhas: segmento na execução {run_a}. Colunas: segmento na execução {run_b}. Cada célula conta as "
            "linhas que estavam nos dois segmentos; a cor é a fração do segmento da linha na execução {run_a}."
        ),
        "section_flows": "Maiores movimentos",
        "section_segment_changes": "Mudanças no tamanho dos segmentos",
        "segment": "Segmento",
        "key": "Chave",
        "name": "Nome",
        "rule": "Regra",
        "size": "Tamanho",
        "share": "Participação",
        "feature": "Variável",
        "overall": "Todas as linhas",
        "mean": "média",
        "overall_mean": "média de todas as linhas",
        "median": "mediana",
        "range": "p25 a p75",
        "null_rate": "ausentes e imputados",
        "z_score": "escore z",
        "centre": "centro do segmento",
        "not_in_run": "fora da execução {run_id}",
        "tenant": "Cliente (tenant)",
        "dataset": "Conjunto de dados",
        "run_id": "Id da execução",
        "status": "Situação",
        "data_version": "Versão dos dados",
        "algorithm": "Algoritmo",
        "parameters": "Parâmetros",
        "k": "Segmentos (k)",
        "k_why_clustering": "{k_requested} pedidos na configuração (algorithm.k), {k_produced} produzidos",
        "k_why_rules": (
            "{k_requested} declarados: {rules} regra(s) e o segmento padrão; {k_produced} receberam linhas"
        ),
        "k_why_chosen": "{k_chosen} usados ({reason}), {k_produced} produzidos",
        "k_why_short": " (os demais segmentos pedidos não receberam linhas)",
        "rows_input": "Linhas lidas",
        "rows_used": "Linhas segmentadas",
        "rows_dropped": "Linhas descartadas (variável ausente com a política 'drop')",
        "finished_at": "Concluída em",
        "seconds": "Duração",
        "seconds_value": "{value} s",
        "metric": "Métrica",
        "value": "Valor",
        "meaning": "Significado",
        "exclusions_note": (
            "A versão {data_version} do conjunto de dados foi gerada pela construção de variáveis {build_id} a "
            "partir de {source_dataset} versão {source_version}, com a recência contada até {reference_date}. "
            "Ela leu {rows_read} linhas, usou {rows_used} e excluiu {rows_excluded}."
        ),
        "exclusions_none": (
            "Nenhuma construção de variáveis gerou esta versão dos dados, então as únicas linhas deixadas "
            "de fora antes da execução são as que a ingestão pôs em quarentena (tabela stratify.quarantine) e "
            "as descartadas acima."
        ),
        "reason": "Motivo",
        "list_separator": "; ",
        "cut_points_from": "(da execução {run_id})",
        "code": "Código",
        "band": "Faixa",
        "cut_points": "Pontos de corte (↓: valores baixos têm nota alta)",
        "rows": "Linhas",
        "compare_id": "Id da comparação",
        "run_a": "Execução anterior",
        "run_b": "Execução posterior",
        "rows_both": "Linhas nas duas execuções",
        "rows_only_a": "Linhas só na execução anterior",
        "rows_only_b": "Linhas só na execução posterior",
        "adjusted_rand_index": "Índice de Rand ajustado (1 = mesmos segmentos, 0 = acaso)",
        "adjusted_mutual_info": "Informação mútua ajustada (1 = mesmos segmentos, 0 = acaso)",
        "flow_moved": "{rows} linhas ({share} de {from_segment}) passaram de {from_segment} para {to_segment}.",
        "flow_left": "{rows} linhas ({share} de {from_segment}) de {from_segment} não estão na execução {run_b}.",
        "flow_joined": "{rows} linhas de {to_segment} não estavam na execução {run_a}.",
        "flows_none": "Nenhuma linha mudou de segmento.",
        "size_a": "Tamanho em {run_id}",
        "size_b": "Tamanho em {run_id}",
        "size_change": "Variação",
        "share_change": "Variação da participação (pontos)",
        "centre_drift": "Deslocamento do centro",
        "segment_status": "Situação da chave",
        "status_new": "novo",
        "status_kept": "mantido",
        "status_split": "dividido",
        "status_merged": "fundido",
        "status_retired": "encerrado",
        "status_succeeded": "concluída",
        "desc_high": "{feature} acima da média",
        "desc_low": "{feature} abaixo da média",
        "desc_recent": "compra recente",
        "desc_not_recent": "sem compra recente",
        "desc_somewhat_high": "{feature} um pouco acima da média",
        "desc_somewhat_low": "{feature} um pouco abaixo da média",
        "desc_somewhat_recent": "compra relativamente recente",
        "desc_somewhat_not_recent": "compra menos recente",
        "desc_average": "perto da média",
        "default_segment": "(padrão: nenhuma regra se aplicou)",
        "reason_missing_entity_key": "cliente ou entidade sem chave",
        "reason_missing_order_id": "pedido sem número",
        "reason_missing_order_date": "pedido sem data",
        "reason_after_reference_date": "pedido na data de referência ou depois",
        "reason_cancellation": "cancelamento",
        "reason_missing_amount": "valor não pôde ser calculado",
        "reason_non_positive_amount": "valor zero ou negativo",
        "metric_silhouette": (
            "Silhueta (-1 a 1; maior significa segmentos mais separados); distância: {detail}"
        ),
        "metric_training_cost": "Soma dos quadrados das distâncias ao centro mais próximo, no espaço padronizado",
        "metric_iterations": "Iterações executadas pelo algoritmo",
        "metric_k_requested": "Segmentos pedidos",
        "metric_k_produced": "Segmentos que receberam pelo menos uma linha",
        "metric_rows_input": "Linhas do conjunto de dados na versão fixada",
        "metric_rows_used": "Linhas atribuídas a um segmento",
        "metric_rows_dropped": "Linhas descartadas por variável ausente",
        "metric_rows_multiple_matches": "Linhas em que mais de uma regra se aplicou (vale a primeira)",
        "metric_rows_default": "Linhas em que nenhuma regra se aplicou",
        "metric_rows_matching": "Linhas em que a regra {name} é verdadeira, antes de valer a primeira",
        "metric_rows_assigned": "Linhas atribuídas a {name}",
        "metric_k_chosen": "Segmentos usados pela execução; o motivo está nos dados da execução",
        "metric_stability_ari_mean": (
            "Índice de Rand ajustado médio dos reajustes em subamostras contra o ajuste completo"
        ),
        "metric_stability_ari_min": (
            "Menor índice de Rand ajustado dos reajustes em subamostras contra o ajuste completo"
        ),
        "metric_unstable_segments": (
            "Segmentos que os reajustes em subamostras não reencontram como um grupo: {detail}"
        ),
    },
}


def validate_language(lang: str) -> str:
    """Return `lang` if the report has texts for it, else raise ConfigError."""
    if lang not in MESSAGES:
        raise ConfigError(f"invalid report language {lang!r}; use one of {', '.join(LANGUAGES)}")
    return lang


class Texts:
    """Labels and number formats of one report language."""

    def __init__(self, lang: str) -> None:
        self.lang = validate_language(lang)
        self.messages = MESSAGES[lang]

    def __call__(self, key: str, **values: object) -> str:
        """Return the label `key`, with `values` filled into its {placeholders}."""
        text = self.messages[key]
        return text.format(**values) if values else text

    def number(self, value: Optional[float], decimals: int = 2) -> str:
        """Format a number with a thousands separator and `decimals` digits after the decimal separator."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if isinstance(value, float) and math.isinf(value):
            return "∞" if value > 0 else "-∞"
        english = f"{value:,.{decimals}f}"
        if self.lang == "pt-BR":
            # Swap the two separators through a placeholder: 1,234.56 becomes 1.234,56.
            return english.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return english

    def integer(self, value: Optional[float]) -> str:
        return self.number(value, 0) if value is None else self.number(round(value), 0)

    def percent(self, share: Optional[float], decimals: int = 1) -> str:
        """Format a share between 0 and 1 as a percentage, for example 0.208 as 20.8% (20,8% in pt-BR)."""
        if share is None:
            return "–"
        return f"{self.number(share * 100, decimals)}%"

    def significant(self, value: Optional[float], digits: int = 4) -> str:
        """Format a profile value with at most `digits` significant digits and no trailing zeros.

        Numbers of more than `digits` digits before the decimal separator keep them all, as whole numbers.
        """
        if value is None or isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return self.number(value)
        if float(value).is_integer() and abs(value) < 1e15:
            return self.integer(value)
        magnitude = math.floor(math.log10(abs(value))) if value else 0
        decimals = max(0, min(6, digits - 1 - magnitude))
        text = self.number(value, decimals)
        if decimals > 0:
            text = text.rstrip("0").rstrip("," if self.lang == "pt-BR" else ".")
        return text

    def join(self, values: list[str]) -> str:
        """Join formatted numbers into a list; pt-BR uses '; ' because its decimal separator is a comma."""
        return self.messages["list_separator"].join(values)
