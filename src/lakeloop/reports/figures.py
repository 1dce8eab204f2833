"""The run report's Plotly figures, each from a small pandas frame of `run_report` (pure: no
Spark, no I/O). Every figure uses one slim template (a few hundred bytes instead of Plotly's
~7 KB default, which every figure would otherwise carry) and a fixed height."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

BLUE, ORANGE, RED, GREY, GREEN = "#3366cc", "#ff9900", "#d62728", "#9e9e9e", "#2ca02c"
HEIGHT = 320

TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
        "colorway": [BLUE, ORANGE, GREEN, RED, "#9467bd", "#8c564b", "#e377c2", GREY],
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {"gridcolor": "#eeeeee", "zerolinecolor": "#cccccc", "automargin": True},
        "yaxis": {"gridcolor": "#eeeeee", "zerolinecolor": "#cccccc", "automargin": True},
        "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
        "legend": {"orientation": "h", "y": -0.2},
        "title": {"font": {"size": 14}, "x": 0.01},
    }
)


def _days(values) -> list[str]:
    """Dates as ISO strings: a category axis shows each day once (a date axis with a few
    points shows hours)."""
    return [str(v)[:10] for v in values]


DAY_AXIS = {"type": "category", "categoryorder": "category ascending"}


def _fig(title: str, height: int = HEIGHT, **layout) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=TEMPLATE, title=title, height=height, **layout)
    return fig


def pass_rate(days: pd.DataFrame) -> go.Figure:
    """Pass rate (silver rows / rows in) per data date, one line per silver table."""
    fig = _fig(
        "Pass rate per day", yaxis={"tickformat": ".0%", "rangemode": "tozero"}, xaxis=DAY_AXIS
    )
    for table, d in days.groupby("table", sort=True):
        fig.add_scatter(
            x=_days(d["data_date"]),
            y=d["pass_rate"],
            mode="lines+markers",
            name=str(table),
            customdata=d[["rows_in", "quarantined"]].values,
            hovertemplate="%{x}: %{y:.1%} (%{customdata[0]} rows in, %{customdata[1]} "
            "quarantined)<extra></extra>",
        )
    return fig


def quarantined(days: pd.DataFrame) -> go.Figure:
    """Quarantined rows per data date, stacked per silver table."""
    fig = _fig("Quarantined rows per day", barmode="stack", xaxis=DAY_AXIS)
    for table, d in days.groupby("table", sort=True):
        fig.add_bar(x=_days(d["data_date"]), y=d["quarantined"], name=str(table))
    return fig


def reasons(rows: pd.DataFrame) -> go.Figure:
    """Top quarantine reasons (rows; a row failing two rules counts for both)."""
    d = rows.sort_values("rows")
    fig = _fig("Top quarantine reasons", height=max(HEIGHT, 30 * len(d) + 80))
    fig.add_bar(x=d["rows"], y=d["reason"], orientation="h", marker_color=ORANGE)
    fig.update_layout(yaxis={"automargin": True}, xaxis={"title": "rows"})
    return fig


def missing(shares: pd.DataFrame) -> go.Figure:
    d = shares.sort_values("missing_share")
    fig = _fig("Missing values per column", height=max(HEIGHT, 22 * len(d) + 80))
    fig.add_bar(
        x=d["missing_share"],
        y=d["column"],
        orientation="h",
        marker_color=[RED if v > 0 else GREY for v in d["missing_share"]],
        hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    )
    fig.update_layout(xaxis={"tickformat": ".0%", "rangemode": "tozero"})
    return fig


def histogram(feature: str, buckets: pd.DataFrame) -> go.Figure:
    """Equal-width bucket counts (`run_report.with_edges` rows of one feature)."""
    fig = _fig(feature, height=240, bargap=0.02, showlegend=False)
    fig.add_bar(
        x=(buckets["lo"] + buckets["hi"]) / 2,
        y=buckets["rows"],
        width=(buckets["hi"] - buckets["lo"]).tolist(),
        marker_color=BLUE,
        customdata=buckets[["lo", "hi"]].values,
        hovertemplate="[%{customdata[0]:.4g}, %{customdata[1]:.4g}): %{y}<extra></extra>",
    )
    return fig


def categories(feature: str, counts: pd.DataFrame) -> go.Figure:
    d = counts.sort_values("rows", ascending=False)
    fig = _fig(feature, height=240, showlegend=False)
    fig.add_bar(x=d["value"].astype(str), y=d["rows"], marker_color=BLUE)
    fig.update_layout(xaxis={"type": "category"})
    return fig


def correlations(corr: pd.DataFrame, label: str) -> go.Figure:
    d = corr.dropna(subset=["correlation"]).sort_values("correlation")
    fig = _fig(f"Correlation with {label}", height=max(HEIGHT, 26 * len(d) + 80))
    fig.add_bar(
        x=d["correlation"],
        y=d["feature"],
        orientation="h",
        marker_color=[BLUE if v >= 0 else ORANGE for v in d["correlation"]],
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    )
    fig.update_layout(xaxis={"range": [-1, 1], "title": "Pearson r"})
    return fig


def psi_summary(drift: pd.DataFrame, threshold: float) -> go.Figure:
    """PSI per feature (and of the predictions), the threshold as a line."""
    d = drift.dropna(subset=["psi"]).sort_values("psi")
    fig = _fig("PSI per feature", height=max(HEIGHT, 24 * len(d) + 90))
    fig.add_bar(
        x=d["psi"],
        y=d["feature"],
        orientation="h",
        marker_color=[RED if bool(x) else BLUE for x in d["drifted"]],
        hovertemplate="%{y}: PSI %{x:.4f}<extra></extra>",
    )
    fig.add_vline(x=threshold, line_dash="dash", line_color=RED)
    fig.update_layout(xaxis={"title": f"PSI (threshold {threshold:g})"})
    return fig


def drift_histogram(row: pd.Series) -> go.Figure:
    """Reference vs current shares per bucket of one metrics_drift row, PSI in the title."""
    ref = [int(x) for x in row["reference_counts"]]
    cur = [int(x) for x in row["current_counts"]]
    rs, cs = sum(ref) or 1, sum(cur) or 1
    bins = [str(b) for b in row["bins"]]
    psi = row["psi"]
    flag = " — DRIFTED" if bool(row["drifted"]) else ""
    shown = "n/a" if psi is None or (isinstance(psi, float) and math.isnan(psi)) else f"{psi:.4f}"
    fig = _fig(f"{row['feature']}: PSI {shown}{flag}", height=260, barmode="group")
    fig.add_bar(x=bins, y=[r / rs for r in ref], name="reference", marker_color=GREY)
    fig.add_bar(x=bins, y=[c / cs for c in cur], name="current", marker_color=RED if flag else BLUE)
    fig.update_layout(
        yaxis={"tickformat": ".0%"},
        xaxis={"type": "category"},
        title_font_color=RED if flag else None,
    )
    return fig


def residuals_vs_predicted(sample: pd.DataFrame) -> go.Figure:
    fig = _fig(f"Residual vs predicted ({len(sample)} sampled matured predictions)")
    fig.add_scatter(
        x=sample["prediction"],
        y=sample["residual"],
        mode="markers",
        marker={"size": 4, "opacity": 0.5, "color": BLUE},
        hovertemplate="predicted %{x:.4g}, residual %{y:.4g}<extra></extra>",
    )
    fig.add_hline(y=0, line_color=GREY)
    fig.update_layout(xaxis={"title": "predicted"}, yaxis={"title": "label − predicted"})
    return fig


def residual_histogram(buckets: pd.DataFrame) -> go.Figure:
    fig = histogram("Residuals (label − predicted), all matured predictions", buckets)
    fig.update_layout(height=HEIGHT)
    return fig


def confusion_matrix(counts: pd.DataFrame) -> go.Figure:
    labels = sorted(set(counts["label"]).union(counts["predicted"]))
    cell = {(int(r.label), int(r.predicted)): int(r.rows) for r in counts.itertuples()}
    z = [[cell.get((a, p), 0) for p in labels] for a in labels]
    names = [str(x) for x in labels]
    fig = _fig("Confusion matrix (matured labels)")
    fig.add_heatmap(
        z=z,
        x=[f"predicted {n}" for n in names],
        y=[f"actual {n}" for n in names],
        colorscale="Blues",
        text=z,
        texttemplate="%{text}",
        showscale=False,
    )
    fig.update_layout(yaxis={"autorange": "reversed"})
    return fig


def roc(points: pd.DataFrame, auc: float | None) -> go.Figure:
    shown = "n/a" if auc is None or math.isnan(auc) else f"{auc:.3f}"
    fig = _fig(f"ROC (AUC {shown})")
    fig.add_scatter(
        x=points["fpr"],
        y=points["tpr"],
        mode="lines",
        name="model",
        customdata=points["threshold"],
        hovertemplate="threshold %{customdata:.2f}: FPR %{x:.3f}, TPR %{y:.3f}<extra></extra>",
    )
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": GREY}
    )
    fig.update_layout(
        xaxis={"title": "false positive rate", "range": [0, 1]},
        yaxis={"title": "true positive rate", "range": [0, 1]},
    )
    return fig


def quality_over_time(quality: pd.DataFrame, metric: str) -> go.Figure:
    """`metric` per prediction date, one line per (model version, role); each version's own
    test score as a dotted line."""
    d = quality[quality["metric"] == metric]
    fig = _fig(f"{metric} per prediction date (matured labels)", xaxis=DAY_AXIS)
    for (version, role), g in d.groupby(["model_version", "role"], sort=True):
        g = g.sort_values("prediction_date")
        fig.add_scatter(
            x=_days(g["prediction_date"]),
            y=g["value"],
            mode="lines+markers",
            name=f"v{version} {role}",
            line={"dash": "dash" if role == "challenger" else "solid"},
            customdata=g[["matured_labels", "predictions"]].values,
            hovertemplate="%{x}: %{y:.4g} (%{customdata[0]} of %{customdata[1]} labelled)"
            "<extra></extra>",
        )
        test = g["test_value"].dropna()
        if len(test):
            fig.add_scatter(
                x=_days([g["prediction_date"].min(), g["prediction_date"].max()]),
                y=[float(test.iloc[0])] * 2,
                mode="lines",
                name=f"v{version} test {metric}",
                line={"dash": "dot", "color": GREY},
            )
    fig.update_layout(yaxis={"title": metric})
    return fig


def champion_vs_challenger(quality: pd.DataFrame, metric: str) -> go.Figure:
    """The champion's and the challenger's `metric` side by side per prediction date."""
    d = quality[quality["metric"] == metric].sort_values("prediction_date")
    fig = _fig(
        f"Champion vs challenger: {metric} on the same predictions",
        barmode="group",
        xaxis=DAY_AXIS,
    )
    for (version, role), g in d.groupby(["model_version", "role"], sort=True):
        fig.add_bar(
            x=_days(g["prediction_date"]),
            y=g["value"],
            name=f"v{version} {role}",
            marker_color=ORANGE if role == "challenger" else BLUE,
        )
    return fig


def shadow_scatter(sample: pd.DataFrame, what: str) -> go.Figure:
    champ = int(sample["model_version"].iloc[0])
    chall = int(sample["challenger_version"].iloc[0])
    fig = _fig(f"Shadow scores: champion v{champ} vs challenger v{chall} ({what})")
    fig.add_scatter(
        x=sample["champion"],
        y=sample["challenger"],
        mode="markers",
        marker={"size": 4, "opacity": 0.5, "color": ORANGE},
        hovertemplate="champion %{x:.4g}, challenger %{y:.4g}<extra></extra>",
    )
    lo = float(min(sample["champion"].min(), sample["challenger"].min()))
    hi = float(max(sample["champion"].max(), sample["challenger"].max()))
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": GREY})
    fig.update_layout(
        showlegend=False,
        xaxis={"title": f"champion v{champ}"},
        yaxis={"title": f"challenger v{chall}"},
    )
    return fig


def weights(kind: str, values: dict[str, float], top: int = 25) -> go.Figure:
    """Feature importances or coefficients, the `top` largest in magnitude."""
    items = sorted(values.items(), key=lambda kv: abs(kv[1]), reverse=True)[:top][::-1]
    fig = _fig(f"Feature {kind}s (top {len(items)})", height=max(HEIGHT, 20 * len(items) + 80))
    fig.add_bar(
        x=[v for _, v in items],
        y=[k for k, _ in items],
        orientation="h",
        marker_color=[BLUE if v >= 0 else ORANGE for _, v in items],
    )
    return fig


def decision_history(history: pd.DataFrame, threshold: float) -> go.Figure:
    """Largest feature PSI per run date, the threshold, and the dates a retrain was
    recommended."""
    d = history.sort_values("run_date")
    fig = _fig("Drift and retrain decisions per run date", xaxis=DAY_AXIS)
    fig.add_scatter(
        x=_days(d["run_date"]),
        y=d["max_psi"],
        mode="lines+markers",
        name="largest feature PSI",
        marker_color=BLUE,
        customdata=d[["drifted", "rule"]].values,
        hovertemplate="%{x}: PSI %{y:.3f}, %{customdata[0]} drifted, rule %{customdata[1]}"
        "<extra></extra>",
    )
    rec = d[d["retrain_recommended"].astype(bool)]
    fig.add_scatter(
        x=_days(rec["run_date"]),
        y=rec["max_psi"].fillna(threshold),
        mode="markers",
        name="retrain recommended",
        marker={"symbol": "star", "size": 14, "color": RED},
    )
    fig.add_hline(y=threshold, line_dash="dash", line_color=RED)
    fig.update_layout(yaxis={"title": f"PSI (threshold {threshold:g})", "rangemode": "tozero"})
    return fig


def online_traffic(traffic: pd.DataFrame) -> go.Figure:
    """Records the online server answered per model (alias and version), and those refused."""
    labels = [
        a if pd.isna(v) else f"{a} v{int(v)}"
        for a, v in zip(traffic["model_alias"], traffic["model_version"], strict=True)
    ]
    fig = _fig("Online records by model", height=max(HEIGHT // 2, 40 * len(labels) + 90))
    fig.add_bar(
        x=traffic["rows"],
        y=labels,
        orientation="h",
        marker_color=[RED if str(a).startswith("(") else BLUE for a in traffic["model_alias"]],
        hovertemplate="%{y}: %{x} records<extra></extra>",
    )
    fig.update_layout(xaxis={"title": "records"})
    return fig
