"""Evaluation reports: plain-text tables for people, strict JSON for programs (numpy only).

The accuracy tables follow Table 4 of the DAGR paper: the 7 modality subsets in the order
R, W, RF, R+W, R+RF, W+RF, R+W+RF, accuracies in %, several seeds shown as mean ± std, and a
comparison of two runs with the signed improvement in points ("Imp").

    from rfsense.train.report import subset_table, compare_table, aggregate_seeds
    print(subset_table({"R": 0.8233, "W": [0.64, 0.66]}, title="edge, seed 0"))
    agg = aggregate_seeds([run0, run1, run2])      # each {'subsets': ..., 'geometry': ...}
    print(compare_table(baseline, agg, "X-Fi", "X-Fi + DAGR"))

Accepted forms of one accuracy (fractions in [0, 1]): a number; a list over seeds; or the
``{'mean', 'std', 'values'}`` dict written by :func:`aggregate_seeds`. Geometry leaves may be
numbers, None, or the same kind of dict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rfsense.modalities import MODALITIES, SUBSETS
from rfsense.train.diagnostics import PAIRS, pair_name

__all__ = [
    "aggregate_seeds",
    "compare_table",
    "geometry_table",
    "subset_table",
]

SUBSET_NAMES: tuple[str, ...] = tuple(name for name, _ in SUBSETS)
_MISSING = "-"


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class _Stat:
    """One reported quantity: mean over n values and their std (ddof=1; 0 when n = 1)."""

    mean: float
    std: float
    n: int
    values: tuple[float, ...] = ()


def _stat_of_values(values: Sequence[float]) -> _Stat:
    arr = np.asarray(values, dtype=np.float64)
    # Sample std (ddof=1) over seeds, the usual reading of "± std" across runs.
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return _Stat(float(arr.mean()), std, int(arr.size), tuple(float(v) for v in arr))


def _is_stat_dict(v: Any) -> bool:
    return isinstance(v, Mapping) and "mean" in v and set(v) <= {"mean", "std", "values", "n"}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _to_stat(v: Any, what: str) -> _Stat | None:
    """A number, a list over seeds or a {'mean','std','values'} dict -> _Stat; None when nothing
    finite is left (None and NaN/Inf values are skipped)."""
    if v is None:
        return None
    if _is_number(v):
        values: Sequence[Any] = [v]
    elif _is_stat_dict(v):
        if v.get("values"):
            values = v["values"]
        elif v["mean"] is None:
            return None
        else:
            std = v.get("std") or 0.0
            return _Stat(float(v["mean"]), float(std), int(v.get("n", 2 if std else 1)))
    elif isinstance(v, (list, tuple, np.ndarray)):
        values = list(v)
    else:
        raise ValueError(
            f"{what} is {v!r}; expected a number, a list over seeds or a {{'mean','std','values'}} dict"
        )
    if not all(x is None or _is_number(x) for x in values):
        raise ValueError(f"{what} has a non-numeric value: {list(values)!r}")
    # None and NaN mean "undefined" (e.g. evaluation writes NaN for a subset with no samples).
    finite = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return _stat_of_values(finite) if finite else None


def _accuracy_stats(acc: Mapping[str, Any], what: str) -> dict[str, _Stat]:
    """Subset name -> accuracy stat (fractions), checking names and the [0, 1] range."""
    unknown = set(acc) - set(SUBSET_NAMES)
    if unknown:
        raise ValueError(
            f"{what}: unknown subset {sorted(unknown)}; expected names from {list(SUBSET_NAMES)}"
        )
    out = {}
    for name in SUBSET_NAMES:
        stat = _to_stat(acc.get(name), f"{what} accuracy for {name!r}")
        if stat is None:
            continue
        vals = stat.values or (stat.mean,)
        if not all(0.0 <= v <= 1.0 for v in vals):
            raise ValueError(
                f"{what} accuracy for {name!r} is {list(vals)}; expected fractions in [0, 1], not percentages"
            )
        out[name] = stat
    return out


def _mean_over_subsets(stats: Mapping[str, _Stat], names: Sequence[str]) -> _Stat | None:
    """Mean accuracy over `names`; per seed when every subset has the same number of seeds.

    With aligned seeds the std is the spread of the per-seed means (what a reader expects
    from "mean over subsets, ± over seeds"); otherwise the mean of the means, with no std.
    """
    chosen = [stats[n] for n in names if n in stats]
    if not chosen:
        return None
    lengths = {len(s.values) for s in chosen}
    if len(lengths) == 1 and lengths != {0}:
        per_seed = np.mean([s.values for s in chosen], axis=0)  # (seeds,)
        return _stat_of_values(per_seed.tolist())
    return _Stat(float(np.mean([s.mean for s in chosen])), 0.0, 1)


# --------------------------------------------------------------------------- formatting


Cell = str | tuple[str, str]  # plain text, or (value, "± std") aligned on the ± sign


def _fmt(stat: _Stat | None, scale: float = 1.0, decimals: int = 2) -> Cell:
    """'82.33' or ('82.33', '± 0.41') when there is a spread over several seeds."""
    if stat is None:
        return _MISSING
    main = f"{stat.mean * scale:.{decimals}f}"
    if stat.n > 1:
        return (main, f"± {stat.std * scale:.{decimals}f}")
    return main


def _fmt_count(stat: _Stat | None) -> Cell:
    if stat is None:
        return _MISSING
    if stat.std == 0.0 and float(stat.mean).is_integer():
        return f"{int(stat.mean)}"
    return _fmt(stat, 1.0, 1)


def _fmt_delta(delta: float | None, decimals: int = 2) -> str:
    """Signed difference, '+1.24' / '-0.17'; a difference that rounds to zero is '+0.00'."""
    if delta is None:
        return _MISSING
    rounded = round(delta, decimals)
    return f"{(rounded if rounded != 0 else 0.0):+.{decimals}f}"


def _render(
    header: Sequence[str], rows: Sequence[Sequence[Cell]], title: str = "", notes: Sequence[str] = ()
) -> str:
    """Aligned plain-text table: first column left-aligned, the others right-aligned, with
    (value, '± std') cells aligned on the ± sign."""
    ncol = len(header)
    mains = [0] * ncol
    pms = [0] * ncol
    for row in rows:
        for j, cell in enumerate(row):
            main, pm = cell if isinstance(cell, tuple) else (cell, "")
            mains[j] = max(mains[j], len(main))
            pms[j] = max(pms[j], len(pm))

    def width(j: int) -> int:
        body = mains[j] + (pms[j] + 1 if pms[j] else 0)
        return max(body, len(header[j]))

    def cell_text(j: int, cell: Cell) -> str:
        main, pm = cell if isinstance(cell, tuple) else (cell, "")
        if j == 0:
            return main.ljust(width(0))
        body = main.rjust(mains[j])
        if pms[j]:
            body += " " + pm.ljust(pms[j])
        return body.rjust(width(j))

    head = "  ".join(h.ljust(width(0)) if j == 0 else h.rjust(width(j)) for j, h in enumerate(header))
    lines = [title] if title else []
    lines += [head.rstrip(), "-" * len(head.rstrip())]
    lines += ["  ".join(cell_text(j, c) for j, c in enumerate(row)).rstrip() for row in rows]
    lines += list(notes)
    return "\n".join(lines)


# --------------------------------------------------------------------------- accuracy tables


def subset_table(acc: Mapping[str, Any], title: str = "") -> str:
    """One-row table of the 7 subset accuracies in the column order of the paper's Table 4.

    Args:
        acc: subset name ('R', 'W', 'RF', 'R+W', 'R+RF', 'W+RF', 'R+W+RF') -> accuracy as a
            fraction in [0, 1], a list of fractions over seeds, or a {'mean','std','values'}
            dict. Subsets that are absent, None or NaN print as '-'.
        title: printed above the table when given.

    Returns:
        The table: columns R | W | RF | R+W | R+RF | W+RF | R+W+RF | mean, values in %
        with 2 decimals, "mean ± std" when a subset has several seeds. "mean" averages the
        subsets shown; a note says so when some are missing.

    Raises:
        ValueError: an unknown subset name, or a value outside [0, 1] (percentages passed).
    """
    stats = _accuracy_stats(acc, "subset_table")
    mean = _mean_over_subsets(stats, SUBSET_NAMES)
    row: list[Cell] = ["acc (%)"] + [_fmt(stats.get(n), 100.0) for n in SUBSET_NAMES] + [_fmt(mean, 100.0)]
    notes = []
    if 0 < len(stats) < len(SUBSET_NAMES):
        notes.append(f"mean over the {len(stats)} of {len(SUBSET_NAMES)} subsets reported")
    return _render(["", *SUBSET_NAMES, "mean"], [row], title, notes)


def _subsets_of(result: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    if "subsets" in result:
        return result["subsets"]
    if set(result) <= set(SUBSET_NAMES):  # a bare {subset: acc} map
        return result
    raise ValueError(
        f"{what} has no 'subsets' key; expected an evaluation result {{'subsets': ..., 'geometry': ...}}"
    )


def compare_table(a: Mapping[str, Any], b: Mapping[str, Any], name_a: str, name_b: str) -> str:
    """Two runs side by side, laid out like the paper's Table 4 (rows = subsets).

    Args:
        a, b: evaluation results ``{'subsets': {name: acc}, 'geometry': {...}}`` (per-seed
            or aggregated by :func:`aggregate_seeds`; 'geometry' is optional).
        name_a, name_b: column headings, e.g. "X-Fi" and "X-Fi + DAGR".

    Returns:
        The accuracy table (columns name_a | name_b | Imp, Imp = b − a in points, signed),
        a 'mean' row over the subsets both runs report, and, when both carry geometry
        diagnostics, a second table with their change (b − a) and which run is better in
        the direction the paper calls good (§4.3: larger Δsem and r_eff, smaller drift and
        fewer pairs outside τ).
    """
    sa = _accuracy_stats(_subsets_of(a, name_a), name_a)
    sb = _accuracy_stats(_subsets_of(b, name_b), name_b)
    rows: list[list[Cell]] = []
    for n in SUBSET_NAMES:
        x, y = sa.get(n), sb.get(n)
        imp = (y.mean - x.mean) * 100.0 if x and y else None
        rows.append([n, _fmt(x, 100.0), _fmt(y, 100.0), _fmt_delta(imp)])
    common = [n for n in SUBSET_NAMES if n in sa and n in sb]
    ma, mb = _mean_over_subsets(sa, common), _mean_over_subsets(sb, common)
    imp = (mb.mean - ma.mean) * 100.0 if ma and mb else None
    rows.append(["mean", _fmt(ma, 100.0), _fmt(mb, 100.0), _fmt_delta(imp)])
    notes = []
    if len(common) < len(SUBSET_NAMES):
        notes.append(f"mean over the {len(common)} subsets both runs report")
    text = _render(["subset", name_a, name_b, "Imp"], rows, "Accuracy (%)", notes)

    ga, gb = a.get("geometry"), b.get("geometry")
    if ga or gb:
        text += "\n\n" + _geometry_compare(ga or {}, gb or {}, name_a, name_b)
    return text


# --------------------------------------------------------------------------- geometry tables

# (key, label, kind) of the headline diagnostics; kind picks format and the good direction.
_GEO_HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("semantic_margin", "semantic margin", "margin"),
    ("drift", "drift", "drift"),
    ("outside_tau", "outside tau (%)", "fraction"),
    ("excess_drift", "excess drift", "drift"),
)
_GEO_PER_MOD: tuple[tuple[str, str, str], ...] = (
    ("semantic_margin_per_modality", "semantic margin", "margin"),
    ("effective_rank", "effective rank", "rank"),
)
_GEO_PER_PAIR: tuple[tuple[str, str, str], ...] = (
    ("drift_per_pair", "drift", "drift"),
    ("outside_tau_per_pair", "outside tau (%)", "fraction"),
    ("excess_drift_per_pair", "excess drift", "drift"),
)
# +1: larger is better, -1: smaller is better (§4.3 and Eq. 13), 0: no direction.
_DIRECTION = {"margin": 1, "rank": 1, "drift": -1, "fraction": -1, "count": 0}
_SCALE = {"margin": 1.0, "rank": 1.0, "drift": 1.0, "fraction": 100.0, "count": 1.0}
_DECIMALS = {"margin": 4, "rank": 2, "drift": 4, "fraction": 2, "count": 0}


def _geo_stat(geo: Mapping[str, Any], key: str, sub: str | None = None) -> _Stat | None:
    v = geo.get(key)
    if sub is not None:
        v = v.get(sub) if isinstance(v, Mapping) and not _is_stat_dict(v) else None
    return _to_stat(v, f"geometry {key}" + (f"[{sub}]" if sub else ""))


def _geo_fmt(stat: _Stat | None, kind: str) -> Cell:
    if kind == "count":
        return _fmt_count(stat)
    return _fmt(stat, _SCALE[kind], _DECIMALS[kind])


def _pair_keys(geo: Mapping[str, Any]) -> list[str]:
    keys = [pair_name(m, n) for m, n in PAIRS]
    for key, _, _ in _GEO_PER_PAIR:
        v = geo.get(key)
        if isinstance(v, Mapping) and not _is_stat_dict(v):
            keys += [k for k in v if k not in keys]
    return keys


def _tau_text(*geos: Mapping[str, Any]) -> str:
    taus = {s.mean for g in geos if (s := _geo_stat(g, "tau")) is not None}
    return ", ".join(f"tau = {t:g}" for t in sorted(taus))


def geometry_table(geo: Mapping[str, Any]) -> str:
    """Readable table of :func:`rfsense.train.diagnostics.geometry_diagnostics` output.

    Args:
        geo: the diagnostics dict, or its seed aggregate from :func:`aggregate_seeds`
            (leaves {'mean','std','values'} print as mean ± std).

    Returns:
        Two blocks: per modality (samples present, semantic margin Δsem, effective rank
        r_eff) with an 'all' row, and per modality pair (pairs, drift d_drift, % of pairs
        outside τ, excess drift A_τ) with an 'all' row. Undefined values print as '-'.
    """
    n = _geo_stat(geo, "n")
    tau = _tau_text(geo)
    title = "Geometry diagnostics (DAGR §4.3, L2-normalised embeddings" + (f", {tau})" if tau else ")")

    mod_rows: list[list[Cell]] = []
    for mod in MODALITIES:
        mod_rows.append(
            [
                mod,
                _fmt_count(_geo_stat(geo, "n_present", mod)),
                _geo_fmt(_geo_stat(geo, "semantic_margin_per_modality", mod), "margin"),
                _geo_fmt(_geo_stat(geo, "effective_rank", mod), "rank"),
            ]
        )
    mod_rows.append(["all", _fmt_count(n), _geo_fmt(_geo_stat(geo, "semantic_margin"), "margin"), _MISSING])
    mod_table = _render(["modality", "n", "semantic margin", "effective rank"], mod_rows, title)

    pair_rows: list[list[Cell]] = []
    for pair in _pair_keys(geo):
        pair_rows.append(
            [pair, _fmt_count(_geo_stat(geo, "n_pairs", pair))]
            + [_geo_fmt(_geo_stat(geo, key, pair), kind) for key, _, kind in _GEO_PER_PAIR]
        )
    pair_counts = [s for p in _pair_keys(geo) if (s := _geo_stat(geo, "n_pairs", p)) is not None]
    total = _Stat(sum(s.mean for s in pair_counts), 0.0, 1) if pair_counts else None
    pair_rows.append(
        ["all", _fmt_count(total)]
        + [_geo_fmt(_geo_stat(geo, key), kind) for key, _, kind in _GEO_HEADLINE[1:]]
    )
    pair_table = _render(["pair", "pairs", "drift", "outside tau (%)", "excess drift"], pair_rows)
    notes = [
        "semantic margin: mean inter- minus intra-class distance; effective rank: exp(entropy) of the",
        "covariance spectrum; drift: mean squared paired distance (all Eq. 14); outside tau: paired",
        "distance > tau (Eq. 7); excess drift: mean (distance - tau)_+^2 (Theorem A.3).",
    ]
    return "\n".join([mod_table, "", pair_table, *notes])


def _geometry_rows(
    geo_a: Mapping[str, Any], geo_b: Mapping[str, Any]
) -> list[tuple[str, str, str, str | None]]:
    """(label, kind, key, sub) of every diagnostic either side carries, headline first."""
    pairs = _pair_keys(geo_a) + [p for p in _pair_keys(geo_b) if p not in _pair_keys(geo_a)]
    margin_key, margin_label, margin_kind = _GEO_HEADLINE[0]
    rows: list[tuple[str, str, str, str | None]] = [
        ("samples", "count", "n", None),
        (margin_label, margin_kind, margin_key, None),
    ]
    for key, label, kind in _GEO_PER_MOD:
        rows += [(f"{label} {mod}", kind, key, mod) for mod in MODALITIES]
    for (key, label, kind), (pair_key, _, _) in zip(_GEO_HEADLINE[1:], _GEO_PER_PAIR, strict=True):
        rows.append((label, kind, key, None))
        rows += [(f"{label} {p}", kind, pair_key, p) for p in pairs]
    return [r for r in rows if any(_geo_stat(g, r[2], r[3]) is not None for g in (geo_a, geo_b))]


def _geometry_compare(geo_a: Mapping[str, Any], geo_b: Mapping[str, Any], name_a: str, name_b: str) -> str:
    out: list[list[Cell]] = []
    for label, kind, key, sub in _geometry_rows(geo_a, geo_b):
        x, y = _geo_stat(geo_a, key, sub), _geo_stat(geo_b, key, sub)
        scale, dec = _SCALE[kind], _DECIMALS[kind]
        delta = (y.mean - x.mean) * scale if x and y else None
        better = ""
        if delta is not None and _DIRECTION[kind]:
            signed = round(delta, dec) * _DIRECTION[kind]
            better = name_b if signed > 0 else name_a if signed < 0 else "="
        out.append([label, _geo_fmt(x, kind), _geo_fmt(y, kind), _fmt_delta(delta, dec), better])
    tau = _tau_text(geo_a, geo_b)
    title = "Geometry (DAGR §4.3" + (f", {tau})" if tau else ")")
    return _render(["diagnostic", name_a, name_b, "change", "better"], out, title)


# --------------------------------------------------------------------------- seeds and JSON


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine per-seed evaluation results into mean/std summaries.

    Args:
        results: one ``{'subsets': {name: acc}, 'geometry': {...}}`` per seed (a list of
            accuracies for one subset is taken as several values).

    Returns:
        ``{'n_seeds': k, 'subsets': {name: {'mean', 'std', 'values'}}, 'geometry': g}``
        where g mirrors the per-seed geometry dicts with every numeric leaf replaced by
        {'mean', 'std', 'values'} (std with ddof=1, 0.0 for one value; None values are
        skipped, and a leaf that is None everywhere gets mean and std None). Subsets no seed
        reports are left out; keys are the union over seeds.

    Raises:
        ValueError: no results, or accuracies that are not fractions in [0, 1].
    """
    if not results:
        raise ValueError("aggregate_seeds needs at least one result")
    subsets: dict[str, dict[str, Any]] = {}
    for name in SUBSET_NAMES:
        values: list[float] = []
        for k, res in enumerate(results):
            stat = _accuracy_stats(_subsets_of(res, f"seed result {k}"), f"seed result {k}").get(name)
            if stat is not None:
                values += list(stat.values or (stat.mean,))
        if values:
            s = _stat_of_values(values)
            subsets[name] = {"mean": s.mean, "std": s.std, "values": list(s.values)}
    geos = [res["geometry"] for res in results if isinstance(res.get("geometry"), Mapping)]
    out: dict[str, Any] = {"n_seeds": len(results), "subsets": subsets}
    if geos:
        out["geometry"] = _aggregate_tree(geos)
    return out


def _aggregate_tree(trees: Sequence[Any]) -> Any:
    """Leaf-wise mean/std over structurally similar nested dicts."""
    present = [t for t in trees if t is not None]
    if present and all(isinstance(t, Mapping) and not _is_stat_dict(t) for t in present):
        keys: list[str] = []
        for t in present:
            keys += [k for k in t if k not in keys]
        return {k: _aggregate_tree([t.get(k) for t in present]) for k in keys}
    if all(_is_number(t) for t in present):
        values = [float(t) for t in present if math.isfinite(float(t))]
        if not values:
            return {"mean": None, "std": None, "values": []}
        s = _stat_of_values(values)
        return {"mean": s.mean, "std": s.std, "values": list(s.values)}
    # Strings and other leaves: kept when every seed agrees, else listed.
    return present[0] if all(t == present[0] for t in present) else list(present)
