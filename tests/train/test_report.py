"""Accuracy and geometry tables (layout of the DAGR paper's Table 4) and seed aggregation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rfsense.config import to_data
from rfsense.modalities import MODALITIES, SUBSETS
from rfsense.train.diagnostics import geometry_diagnostics
from rfsense.train.report import aggregate_seeds, compare_table, geometry_table, subset_table

NAMES = [name for name, _ in SUBSETS]
# X-Fi's row of Table 4 as fractions.
XFI = dict(zip(NAMES, [0.8233, 0.6462, 0.4160, 0.8992, 0.8376, 0.6749, 0.9009], strict=True))


def _cells(line: str) -> list[tuple[str, int]]:
    """(text, end column) of each cell; cells are separated by two or more spaces."""
    return [(m.group(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", line)]


def _lines(table: str) -> list[str]:
    return table.splitlines()


def _geo(seed: int, noise: float) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.arange(90) % 3
    base = np.eye(8)[labels] * 3 + rng.normal(size=(90, 8))
    z = np.stack([base + noise * rng.normal(size=(90, 8)) for _ in range(3)], axis=1)
    return geometry_diagnostics(z, rng.random((90, 3)) > 0.2, labels)


# --------------------------------------------------------------------------- subset_table


def test_subset_table_has_the_seven_columns_in_table4_order_then_mean() -> None:
    table = subset_table(XFI, title="X-Fi")
    lines = _lines(table)
    assert lines[0] == "X-Fi"
    assert [c for c, _ in _cells(lines[1])] == [*NAMES, "mean"]
    row = [c for c, _ in _cells(lines[3])]
    assert row == ["acc (%)", "82.33", "64.62", "41.60", "89.92", "83.76", "67.49", "90.09", "74.26"]
    assert "\x1b" not in table  # no ANSI colours


def test_subset_table_columns_are_aligned_under_their_headers() -> None:
    table = subset_table({**XFI, "W": [0.64, 0.66, 0.65], "RF": None})
    header, rule, row = _lines(table)[:3]
    assert set(rule) == {"-"} and len(rule) == len(header)
    assert [end for _, end in _cells(header)] == [end for _, end in _cells(row)][1:]


def test_subset_table_shows_seeds_as_mean_plus_minus_std() -> None:
    seeds = {n: [v - 0.01, v, v + 0.01] for n, v in XFI.items()}  # std (ddof=1) = 1.00 point
    row = [c for c, _ in _cells(_lines(subset_table(seeds))[2])]
    assert row[1:8] == [f"{100 * v:.2f} ± 1.00" for v in XFI.values()]
    # mean column: per-seed mean over subsets, then mean ± std over seeds.
    assert row[8] == f"{100 * np.mean(list(XFI.values())):.2f} ± 1.00"


def test_subset_table_single_seed_list_has_no_spread() -> None:
    row = [c for c, _ in _cells(_lines(subset_table({"R": [0.5]}))[2])]
    assert row[1] == "50.00"


def test_subset_table_marks_missing_subsets_and_says_what_the_mean_covers() -> None:
    table = subset_table({"R": 0.8, "R+W+RF": 0.9})
    row = [c for c, _ in _cells(_lines(table)[2])]
    assert row == ["acc (%)", "80.00", "-", "-", "-", "-", "-", "90.00", "85.00"]
    assert "2 of 7 subsets" in table


def test_subset_table_accepts_aggregated_values() -> None:
    agg = aggregate_seeds([{"subsets": {"R": 0.80}}, {"subsets": {"R": 0.82}}])
    row = [c for c, _ in _cells(_lines(subset_table(agg["subsets"]))[2])]
    assert row[1] == f"81.00 ± {100 * np.std([0.80, 0.82], ddof=1):.2f}"


def test_subset_table_rejects_percentages_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="fractions in \\[0, 1\\]"):
        subset_table({"R": 82.33})
    with pytest.raises(ValueError, match="unknown subset \\['RW'\\]"):
        subset_table({"RW": 0.5})
    with pytest.raises(ValueError, match="expected a number"):
        subset_table({"R": "0.5"})


def test_nan_accuracy_is_missing() -> None:
    # Evaluation writes NaN for a subset with no usable samples.
    row = [c for c, _ in _cells(_lines(subset_table({"R": float("nan"), "W": [0.5, float("nan")]}))[2])]
    assert row[:3] == ["acc (%)", "-", "50.00"]
    agg = aggregate_seeds([{"subsets": {"R": float("nan"), "W": 0.4}}, {"subsets": {"R": 0.6, "W": 0.5}}])
    assert agg["subsets"]["R"]["values"] == [0.6]


# --------------------------------------------------------------------------- compare_table


def test_compare_table_rows_and_signed_improvement() -> None:
    dagr = dict(zip(NAMES, [0.8357, 0.6736, 0.4254, 0.9074, 0.8584, 0.6795, 0.9101], strict=True))
    dagr["W"] = 0.6400  # worse than X-Fi on W
    table = compare_table({"subsets": XFI}, {"subsets": dagr}, "X-Fi", "X-Fi + DAGR")
    lines = _lines(table)
    assert lines[0] == "Accuracy (%)"
    assert [c for c, _ in _cells(lines[1])] == ["subset", "X-Fi", "X-Fi + DAGR", "Imp"]
    rows = {cells[0][0]: [c for c, _ in cells] for cells in map(_cells, lines[3:11])}
    assert list(rows) == [*NAMES, "mean"]
    assert rows["R"] == ["R", "82.33", "83.57", "+1.24"]
    assert rows["W"] == ["W", "64.62", "64.00", "-0.62"]
    assert rows["R+W+RF"][3] == "+0.92"
    mean_imp = 100 * (np.mean(list(dagr.values())) - np.mean(list(XFI.values())))
    assert rows["mean"][3] == f"{mean_imp:+.2f}"
    assert "Geometry" not in table


def test_compare_table_zero_improvement_is_not_negative() -> None:
    table = compare_table({"subsets": {"R": 0.5}}, {"subsets": {"R": 0.5 - 1e-12}}, "a", "b")
    assert "-0.00" not in table and "+0.00" in table


def test_compare_table_missing_subsets() -> None:
    a = {"subsets": {"R": 0.80, "W": 0.60}}
    b = {"subsets": {"R": 0.85, "RF": 0.40}}
    lines = _lines(compare_table(a, b, "a", "b"))
    rows = {cells[0][0]: [c for c, _ in cells] for cells in map(_cells, lines[3:11])}
    assert rows["W"] == ["W", "60.00", "-", "-"]
    assert rows["RF"] == ["RF", "-", "40.00", "-"]
    assert rows["R+W"] == ["R+W", "-", "-", "-"]
    assert rows["mean"] == ["mean", "80.00", "85.00", "+5.00"]  # over the common subset R only
    assert "mean over the 1 subsets both runs report" in lines[11]


def test_compare_table_with_seeds_and_geometry() -> None:
    runs_a = [
        {"subsets": {n: v - 0.01 * k for n, v in XFI.items()}, "geometry": _geo(k, 2.0)} for k in range(3)
    ]
    runs_b = [
        {"subsets": {n: v + 0.01 * k for n, v in XFI.items()}, "geometry": _geo(k, 0.1)} for k in range(3)
    ]
    a, b = aggregate_seeds(runs_a), aggregate_seeds(runs_b)
    table = compare_table(a, b, "base", "dagr")
    assert "82.33" not in table  # means moved by the seeds
    assert "± 1.00" in table
    geo_lines = _lines(table[table.index("Geometry") :])
    assert [c for c, _ in _cells(geo_lines[1])] == ["diagnostic", "base", "dagr", "change", "better"]
    rows = {cells[0][0]: [c for c, _ in cells] for cells in map(_cells, geo_lines[3:])}
    # Less modality noise in b: smaller drift (better, lower is good), change negative.
    assert rows["drift"][-1] == "dagr" and rows["drift"][-2].startswith("-")
    assert rows["drift mmwave-wifi"][-1] == "dagr"
    for mod in MODALITIES:
        assert f"effective rank {mod}" in rows
    # The semantic margin: b better when larger, and the column names who is better.
    ma, mb = a["geometry"]["semantic_margin"]["mean"], b["geometry"]["semantic_margin"]["mean"]
    assert rows["semantic margin"][-1] == ("dagr" if mb > ma else "base")


def test_compare_table_geometry_on_one_side_only() -> None:
    table = compare_table({"subsets": XFI, "geometry": _geo(0, 1.0)}, {"subsets": XFI}, "a", "b")
    rows = {c[0][0]: [x for x, _ in c] for c in map(_cells, _lines(table[table.index("Geometry") :])[3:])}
    assert rows["drift"][2] == "-" and rows["drift"][-1] == "-"


# --------------------------------------------------------------------------- geometry_table


def test_geometry_table_lists_modalities_pairs_and_none_as_dash() -> None:
    geo = _geo(0, 1.0)
    geo["effective_rank"]["rfid"] = None
    table = geometry_table(geo)
    assert "tau = 0.25" in table.splitlines()[0]
    rows = {c[0][0]: [x for x, _ in c] for c in map(_cells, table.splitlines()) if c}
    assert rows["mmwave"][1] == str(geo["n_present"]["mmwave"])
    assert rows["mmwave"][2] == f"{geo['semantic_margin_per_modality']['mmwave']:.4f}"
    assert rows["wifi"][3] == f"{geo['effective_rank']['wifi']:.2f}"
    assert rows["rfid"][3] == "-"
    pair = rows["mmwave-wifi"]
    assert pair[2] == f"{geo['drift_per_pair']['mmwave-wifi']:.4f}"
    assert pair[3] == f"{100 * geo['outside_tau_per_pair']['mmwave-wifi']:.2f}"
    assert "\x1b" not in table


def test_geometry_table_of_an_aggregate_shows_spread() -> None:
    agg = aggregate_seeds([{"subsets": {}, "geometry": _geo(k, 1.0)} for k in range(3)])
    assert "±" in geometry_table(agg["geometry"])


# --------------------------------------------------------------------------- aggregate_seeds, JSON


def test_aggregate_seeds_means_stds_and_values() -> None:
    results = [
        {"subsets": {"R": 0.80, "W": 0.60}, "geometry": {"drift": 0.5, "effective_rank": {"wifi": 3.0}}},
        {"subsets": {"R": 0.84, "W": 0.62}, "geometry": {"drift": 0.7, "effective_rank": {"wifi": None}}},
        {"subsets": {"R": 0.82}, "geometry": {"drift": 0.6, "effective_rank": {"wifi": 5.0}}},
    ]
    agg = aggregate_seeds(results)
    assert agg["n_seeds"] == 3
    assert agg["subsets"]["R"]["values"] == [0.80, 0.84, 0.82]
    assert agg["subsets"]["R"]["mean"] == pytest.approx(0.82)
    assert agg["subsets"]["R"]["std"] == pytest.approx(np.std([0.80, 0.84, 0.82], ddof=1))
    assert agg["subsets"]["W"]["values"] == [0.60, 0.62]  # the seed without W is skipped
    assert "RF" not in agg["subsets"]
    assert agg["geometry"]["drift"]["mean"] == pytest.approx(0.6)
    assert agg["geometry"]["effective_rank"]["wifi"]["values"] == [3.0, 5.0]  # None skipped
    json.loads(json.dumps(to_data(agg), allow_nan=False))


def test_aggregate_seeds_of_real_diagnostics_keeps_the_structure() -> None:
    geos = [_geo(k, 1.0) for k in range(2)]
    agg = aggregate_seeds([{"subsets": XFI, "geometry": g} for g in geos])["geometry"]
    assert set(agg) == set(geos[0])
    assert agg["drift_per_pair"]["wifi-rfid"]["values"] == [g["drift_per_pair"]["wifi-rfid"] for g in geos]
    assert agg["tau"] == {"mean": 0.25, "std": 0.0, "values": [0.25, 0.25]}


def test_aggregate_seeds_needs_results() -> None:
    with pytest.raises(ValueError, match="at least one"):
        aggregate_seeds([])


def test_json_safe_conversion_is_strict() -> None:
    text = json.dumps(to_data({"a": np.float32(0.5), "b": np.arange(3), "c": float("nan"), "d": np.bool_(True)}),
                      allow_nan=False)
    assert json.loads(text) == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": True}
    assert "NaN" not in text
