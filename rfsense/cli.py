"""The `rfsense` command line: thin click commands around library functions.

Expected failures (bad data, config or model files) print one `Error:` line and exit 1; usage
errors exit 2; real bugs keep their traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from rfsense import __version__
from rfsense.errors import RFSenseError
from rfsense.modalities import N_CLASSES
from rfsense.progress import setup_logging

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """Turns library errors (RFSenseError) into click errors, once, for every command."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RFSenseError as err:
            from rfsense.train.launch import record_rank_error

            if record_rank_error(str(err)):  # a rank of `train --nproc`: the launcher prints it, once
                sys.exit(1)
            raise click.ClickException(str(err)) from None


def require_extra(extra: str, *modules: str) -> None:
    """One-line error naming the pip extra when a command's optional dependencies are not installed."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(f"this command needs {', '.join(missing)}, which the '{extra}' extra installs: "
                                   f"pip install 'rfsense[{extra}]'")


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """Parse '0,42,3407' or '1-14' or '1-10,12' into ints."""
    if value is None:
        return None
    out: list[int] = []
    try:
        for part in value.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected integers like 0,42,3407 or a range like 1-14") from None
    return out


def _overrides(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    for item in value:
        if "=" not in item or item.startswith("="):
            raise click.BadParameter(f"{item!r}: expected key=value, e.g. train.epochs=5")
    return list(value)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="rfsense")
@click.option("-v", "--verbose", count=True, help="More detail (-v debug).")
@click.option("-q", "--quiet", count=True, help="Only warnings and errors; no progress.")
def main(verbose: int, quiet: int) -> None:
    """rfsense: train one model fusing WiFi CSI, RFID and mmWave radar (XRF55), ship it as ONNX.

    \b
    rfsense synth DIR                    synthetic XRF55-layout data set
    rfsense data check ROOT              validate an XRF55 tree
    rfsense data pack ROOT OUT           preprocess + pack into memory-mapped arrays
    rfsense convert SESSION.yaml OUT     your labelled recordings -> an XRF55-layout tree
    rfsense train configs/xrf55.yaml     encoders + X-Fi-style fusion + DAGR
    rfsense eval RUN                     7-subset accuracy + geometry diagnostics
    rfsense compare RUN_A RUN_B          two runs side by side
    rfsense export [RUN]                 ONNX + manifest, parity-checked
    rfsense infer MODEL.onnx INPUT...    torch-free inference on recorded data
    rfsense stress MODEL... --data ROOT  sensor-failure stress tests, curves and tables
    """
    setup_logging(verbose - quiet)


# ---------------------------------------------------------------------------------------------- synth
@main.command(context_settings=CONTEXT)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--volunteers", default=2, show_default=True, type=click.IntRange(1), help="Number of volunteers.")
@click.option("--actions", default=10, show_default=True, type=click.IntRange(1, N_CLASSES), help="Actions 1..K.")
@click.option("--trials", default=20, show_default=True, type=click.IntRange(1), help="Trials per action.")
@click.option("--scenes", default=1, show_default=True, type=click.IntRange(1), help="Scenes (rooms).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--layout", default="flat", show_default=True, type=click.Choice(["flat", "scenes"]))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Processes.")
@click.option("--raw", is_flag=True, help="Also write each sample's raw recordings under OUT/raw: Impinj CSV "
              "and DCA1000 .bin + mmWave Studio JSON (79 MB per sample).")
def synth(out: Path, volunteers: int, actions: int, trials: int, scenes: int, seed: int, layout: str,
          workers: int, raw: bool) -> None:
    """Write a deterministic synthetic data set in the XRF55 layout to OUT."""
    from rfsense.data.synth import SynthConfig, synthesize

    try:
        cfg = SynthConfig(volunteers=volunteers, actions=actions, trials=trials, scenes=scenes, seed=seed,
                          layout=layout)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    summary = synthesize(out, cfg, workers=workers, raw=raw)
    click.echo(f"{summary['n_samples']} samples in {out} ({summary['n_written']} written, "
               f"{summary['n_skipped']} already there, {summary['seconds']:.1f} s)")


# ----------------------------------------------------------------------------------------------- data
@main.group(cls=_Group, context_settings=CONTEXT)
def data() -> None:
    """Check and pack XRF55-layout data."""


def _split_options(f):
    f = click.option("--test-volunteers", callback=_int_list, help="Cross-subject split: these volunteers are test.")(f)
    f = click.option("--train-trials", callback=_int_list, help="Trials in train (default 1-14; rest test).")(f)
    f = click.option("--protocol", type=click.Choice(["trials", "volunteers", "folders"]), default=None,
                     help="Split rule (default: trials, or volunteers when --test-volunteers is given).")(f)
    return f


def _split_spec(protocol: str | None, train_trials: list[int] | None, test_volunteers: list[int] | None):
    from rfsense.data.layout import SplitSpec

    kwargs: dict = {}
    if train_trials:
        kwargs["train_trials"] = tuple(train_trials)
    if test_volunteers:
        kwargs["test_volunteers"] = tuple(test_volunteers)
    kwargs["protocol"] = protocol or ("volunteers" if test_volunteers else "trials")
    return SplitSpec(**kwargs)


@data.command(context_settings=CONTEXT)
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quick", is_flag=True, help="Headers only: skip reading the values (NaN/Inf and quality checks).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Take data.quality and data.split from this run config.")
@_split_options
def check(root: Path, as_json: bool, quick: bool, config_path: Path | None, protocol, train_trials,
          test_volunteers) -> None:
    """Validate the XRF55 tree at ROOT; exit 1 when problems are found."""
    from rfsense.data.validate import check_tree

    spec, quality = _split_spec(protocol, train_trials, test_volunteers), None
    if config_path is not None:
        from rfsense.train.config import load_config

        cfg = load_config(config_path)
        quality = cfg.data.quality
        if not (protocol or train_trials or test_volunteers):
            spec = cfg.data.split
    report = check_tree(root, spec, scan_values=not quick, quality=quality)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    if not report.ok:
        sys.exit(1)


@data.command("pack", context_settings=CONTEXT)
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Take data.preprocessing, data.quality and data.split from this run config.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable files (their modality is marked absent).")
@click.option("--overwrite", is_flag=True, help="Replace a pack of other data or settings at OUT.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Processes reading and preprocessing in parallel (the pack is the same byte for byte).")
@_split_options
def pack_cmd(root: Path, out: Path, dtype: str, config_path: Path | None, skip_bad: bool, overwrite: bool,
             workers: int, protocol, train_trials, test_volunteers) -> None:
    """Preprocess ROOT once and pack it into memory-mapped arrays at OUT."""
    from rfsense.data.pack import pack

    prep = quality = None
    spec = _split_spec(protocol, train_trials, test_volunteers)
    if config_path is not None:
        from rfsense.train.config import load_config

        cfg = load_config(config_path)
        prep, quality = cfg.data.preprocessing, cfg.data.quality
        if not (protocol or train_trials or test_volunteers):
            spec = cfg.data.split
    p = pack(root, out, prep, spec, dtype, skip_bad=skip_bad, overwrite=overwrite, quality=quality, workers=workers)
    click.echo(f"pack {p.path}: " + ", ".join(f"{k} {v}" for k, v in p.meta["splits"].items()) + f" ({dtype})")


# ---------------------------------------------------------------------------------------------- train
@main.command(context_settings=CONTEXT)
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, callback=_overrides, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.epochs=5 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the run from its last.pt.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--seeds", callback=_int_list, help="Train one run per seed, e.g. 0,42,3407; report mean ± std.")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(1),
              help="Processes on this machine (one per GPU): torchrun --standalone --nproc_per_node N.")
@click.option("--stage", type=click.Choice(["joint", "backbones", "fusion", "xfi"]), default=None,
              help="Training stage (train.stage): joint end to end; X-Fi's protocol: backbones alone, then fusion "
                   "on the frozen backbones of --backbones RUN; xfi runs both in order.")
@click.option("--backbones", "backbones_run", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Run folder of a finished backbones stage (with --stage fusion).")
@click.pass_context
def train(ctx: click.Context, config: Path, overrides: list[str], resume: bool, overwrite: bool,
          seeds: list[int] | None, nproc: int, stage: str | None, backbones_run: Path | None) -> None:
    """Train the fusion model described by CONFIG (YAML) and evaluate it on the test split."""
    require_extra("train", "torch")
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    overrides = [*overrides, *([f"train.stage={stage}"] if stage else []),
                 *([f"train.backbones={backbones_run}"] if backbones_run else [])]
    if nproc > 1:
        if "LOCAL_RANK" in os.environ:
            raise click.UsageError("--nproc starts torchrun itself; under torchrun leave it out")
        from rfsense.train.launch import launch

        top = ctx.parent.params if ctx.parent else {}
        args = ["-v"] * top.get("verbose", 0) + ["-q"] * top.get("quiet", 0) + ["train", str(config)]
        args += [f"--set={o}" for o in overrides] + ["--resume"] * resume + ["--overwrite"] * overwrite
        args += [f"--seeds={','.join(map(str, seeds))}"] if seeds else []
        launch(nproc, args)
        return
    from rfsense.train.config import load_config
    from rfsense.train.loop import run

    result = run(load_config(config, overrides), seeds=seeds, resume=resume, overwrite=overwrite)
    if result:  # under torchrun only rank 0 has the results
        click.echo(result["table"])


@main.command("eval", context_settings=CONTEXT)
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--plots", is_flag=True, help="Also draw the per-epoch geometry diagnostics into RUN/geometry.png "
                                            "(needs the 'plots' extra).")
def eval_cmd(run_dir: Path, checkpoint: str, as_json: bool, plots: bool) -> None:
    """Accuracy on all 7 modality subsets and geometry diagnostics for RUN (or a folder of seed runs)."""
    require_extra("train", "torch")
    if plots:
        require_extra("plots", "matplotlib")
    from rfsense.train.evaluate import evaluate_run

    result = evaluate_run(run_dir, which=checkpoint)
    table = result.pop("table")
    click.echo(json.dumps(result, indent=2) if as_json else table)
    if plots:
        from rfsense.train.plots import plot_geometry
        from rfsense.train.rundir import seed_runs

        for folder in seed_runs(run_dir) or [run_dir]:
            click.echo(f"wrote {plot_geometry(folder)}", err=as_json)


@main.command(context_settings=CONTEXT)
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
def compare(run_a: Path, run_b: Path) -> None:
    """Two evaluated runs side by side, with the improvement of RUN_B over RUN_A."""
    from rfsense.train.report import compare_table

    results = []
    for r in (run_a, run_b):
        f = r / "results.json"
        if not f.is_file():
            raise click.ClickException(f"{r} has no results.json; run `rfsense eval {r}` first")
        results.append(json.loads(f.read_text()))
    click.echo(compare_table(results[0], results[1], run_a.name, run_b.name))


# --------------------------------------------------------------------------------------------- deploy
@main.command("export", context_settings=CONTEXT)
@click.argument("run_dir", metavar="[RUN]", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", default=Path("export"), show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--int8", is_flag=True, help="Also write a dynamically quantised (MatMul/Gemm) model, compared with fp32.")
@click.option("--runs", "runs_root", default=Path("runs"), show_default=True, type=click.Path(path_type=Path),
              help="Where to look for the newest run when RUN is not given.")
def export_cmd(run_dir: Path | None, out: Path, int8: bool, runs_root: Path) -> None:
    """Export RUN's best checkpoint (default: the newest run) to ONNX with a manifest; checks parity."""
    require_extra("train", "torch", "onnx", "onnxscript")
    from rfsense.deploy.export import export_run

    m = export_run(run_dir, out=out, int8=int8, runs_root=runs_root)
    p = m["parity"]
    encoders = ", ".join(g["file"] for part, g in m["graphs"].items() if part != "fusion")
    click.echo(f"wrote {out / m['model_file']} (fusion) and {encoders} ({m['size_bytes'] / 1e6:.2f} MB in all), "
               f"and their manifest {out / (Path(m['model_file']).stem + '.json')}")
    click.echo(f"parity vs PyTorch eval(): 7 subsets x batch 1, 7 and mixed presence: max |dlogit| "
               f"{p['max_abs_diff']:.2e} (rtol {p['rtol']}, atol {p['atol']}), top-1 identical: {p['top1_equal']}")
    thresholds = "; ".join(f"{k} {v['threshold']:.3g} ({v['rows']} {v['split']} rows)" if v["threshold"] is not None
                           else f"{k} none ({v['note']})" for k, v in m["plausibility"]["ood"].items())
    click.echo(f"OOD thresholds: {thresholds or 'none'}")
    if int8:
        q = m["int8"]
        click.echo(f"\n{'variant':<8}{'accuracy':>10}{'size MB':>10}{'p50 ms':>9}{'p90 ms':>9}")
        for k in ("fp32", "int8"):
            r = q[k]
            click.echo(f"{k:<8}{100 * r['accuracy']:>9.2f}%{r['size_bytes'] / 1e6:>10.2f}"
                       f"{r['latency_ms_b1']['p50']:>9.2f}{r['latency_ms_b1']['p90']:>9.2f}")
        click.echo(f"top-1 agreement int8 vs fp32: {100 * q['top1_agreement']:.2f}% on {q['n_test']} test samples "
                   f"(all usable modalities, batch-1 latency)")


def _capture_formats() -> list[str]:
    from rfsense.data.recordings.formats import FORMATS

    return list(FORMATS)


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    """'a,b,c' -> ('a', 'b', 'c'); 'all' or unset -> None."""
    if value is None or value.strip() == "all":
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


@main.command(context_settings=CONTEXT)
@click.argument("models", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="XRF55-layout tree whose split is corrupted (required unless --list-faults).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]))
@click.option("--train-trials", callback=_int_list, help="Trials in train (default 1-14; rest test).")
@click.option("--faults", callback=_names, help="Comma-separated faults, or all (default: every fault).")
@click.option("--modalities", callback=_names, help="Comma-separated modalities to corrupt (default: all).")
@click.option("--severities", default="0-5", show_default=True, callback=_int_list, help="E.g. 0-5 or 0,3,5.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0))
@click.option("--health", default="both", show_default=True, type=click.Choice(["on", "off", "both"]),
              help="With the runtime's health checks, without them, or both.")
@click.option("--alone", is_flag=True, help="Evaluate a corrupted sensor alone (the others not given).")
@click.option("--limit", type=click.IntRange(1), help="At most N samples, spread over the split (a quick look).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Processes.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for results.json/.csv, report.md and curves (default stress/<first model>/).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--list-faults", is_flag=True, help="Print every fault, its severities and their physical meaning.")
def stress(models: tuple[Path, ...], data_root: Path | None, split: str, train_trials: list[int] | None,
           faults: tuple[str, ...] | None, modalities: tuple[str, ...] | None, severities: list[int], seed: int,
           health: str, alone: bool, limit: int | None, workers: int, out: Path | None, fmt: str,
           list_faults: bool) -> None:
    """Sensor-failure stress tests: accuracy of MODEL(s) (exported .onnx or run folders) under faults.

    Every model sees exactly the same corrupted samples (same seed), so their curves compare point by point.
    """
    from rfsense.data.faults import describe_faults

    if list_faults:
        click.echo(describe_faults())
        return
    if not models or data_root is None:
        raise click.UsageError("give MODEL(s) and --data ROOT (or --list-faults)")
    from rfsense.data.layout import SplitSpec
    from rfsense.deploy.stress import StressOptions, run_stress, summary_table
    from rfsense.modalities import MODALITIES

    opts = StressOptions(faults=faults or (), modalities=modalities or MODALITIES, severities=tuple(severities),
                         seed=seed, health=health, split=split, limit=limit, alone=alone, workers=workers,
                         spec=SplitSpec(train_trials=tuple(train_trials)) if train_trials else SplitSpec())
    results = run_stress(list(models), data_root, opts, out)
    if fmt == "json":
        click.echo(json.dumps(results["summary"], indent=2))
    else:
        click.echo(summary_table(results["summary"]))
        click.echo(f"\nreport: {Path(results['out']) / 'report.md'} (results.json, results.csv, curves beside it)")


@main.command(context_settings=CONTEXT)
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table", show_default=True)
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(1, N_CLASSES))
@click.option("--providers", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--threads", type=click.IntRange(1), help="onnxruntime intra-op threads (default: its own choice).")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1))
@click.option("--hop", "hop_s", type=click.FloatRange(min=0, min_open=True),
              help="Hop in seconds between 5 s windows of long captures (default: 5, no overlap).")
@click.option("--short", type=click.Choice(["pad", "refuse"]), default="pad", show_default=True,
              help="A capture shorter than one window: pad it (flagged) or refuse it.")
@click.option("--max-gap", "max_gap_s", default=0.5, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds without records that split a capture; no window bridges such a gap.")
@click.option("--input-format", type=click.Choice(sorted(_capture_formats())), default=None,
              help="Read every capture as this format instead of recognising it from its content.")
@click.option("--tag-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Impinj CSV: file with the 23 tag EPCs in row order (default: first 23 EPCs read, flagged).")
@click.option("--radar-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="DCA1000 .bin: mmWave Studio JSON or YAML radar config (default: <name>.mmwave.json beside "
              "the capture, else XRF55's profile, flagged).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Session files: the convert.json of the conversion the model was trained on; its tag map, radar "
              "config, receiver formats and clocks fill in what the session leaves open.")
@click.option("--plausibility/--no-plausibility", default=True, show_default=True,
              help="Check preprocessed streams against the model's training statistics and OOD thresholds "
              "(rfsense-onnx/2 exports); the physical checks on raw values always apply.")
def infer(model: Path, inputs: tuple[Path, ...], fmt: str, top_k: int, providers: str, threads: int | None,
          batch_size: int, hop_s: float | None, short: str, max_gap_s: float, input_format: str | None,
          tag_map: Path | None, radar_config: Path | None, mapping: Path | None, plausibility: bool) -> None:
    """Classify recorded sensor data with MODEL.onnx (torch-free).

    INPUT: XRF55-layout folders, single <v>_<a>_<t>.npy files (partners found by key), .npz bundles with
    mmwave/wifi/rfid arrays, session files (.yaml: one capture per sensor on one timeline; its windows:
    options apply, --hop overrides its hop), or raw captures recognised by their content (WiFi: one file
    per receiver, up to 3, given together); `rfsense infer --help` lists the formats under --input-format.
    """
    from rfsense.data.recordings.formats import CaptureOptions
    from rfsense.deploy.infer import infer_paths
    from rfsense.deploy.runtime import Runtime, format_predictions

    rt = Runtime(model, providers=providers, threads=threads)
    if not plausibility and rt.plausibility is not None:
        import dataclasses

        rt.plausibility.config = dataclasses.replace(rt.plausibility.config, distribution=False, ood=False)
    extra = {k: v for k, v in (("tag_map", tag_map), ("radar_config", radar_config), ("mapping", mapping))
             if v is not None}
    opts = CaptureOptions(hop_s=hop_s, short=short, max_gap_s=max_gap_s, extra=extra)
    ids, preds = infer_paths(rt, list(inputs), top_k=top_k, batch_size=batch_size, options=opts,
                             input_format=input_format)
    if fmt == "table":
        click.echo(f"model {model} on {', '.join(rt.providers)}; {len(preds)} samples", err=True)
    click.echo(format_predictions(preds, ids, fmt))


@main.command(context_settings=CONTEXT)
@click.argument("session_file", metavar="SESSION.yaml", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="convert.json of an earlier conversion: read these captures with the same tag map, radar "
              "config, receiver formats and clocks where the session leaves them open.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier conversion at OUT.")
def convert(session_file: Path, out: Path, mapping: Path | None, overwrite: bool) -> None:
    """Write the labelled trials of SESSION.yaml as an XRF55-layout tree at OUT, plus OUT/convert.json."""
    from rfsense.data.recordings.convert import convert_session

    meta = convert_session(session_file, out, mapping=mapping, overwrite=overwrite)  # logs the sensors' overlap
    flagged = sum(bool(s["flags"]) for s in meta["samples"])
    click.echo(f"wrote {len(meta['samples'])} samples to {out} ({', '.join(meta['layout'])}); "
               f"{flagged} with flags, {len(meta['skipped'])} trials skipped; mappings in {out / 'convert.json'}")
    for s in meta["skipped"]:
        click.echo(f"  skipped {s['name']} at {s['start_s']:.2f} s: {s['reason']}")
