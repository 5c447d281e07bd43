"""`lyricgen compare`: both backends on the same data, seed, initial weights and batches; speed,
perplexity curves and numerical agreement side by side, as a table, JSON, CSV and a plot."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lyricgen import models
from lyricgen.files import remove_stale_temporaries
from lyricgen.config import Config
from lyricgen.data.corpus import Corpus, load_corpus
from lyricgen.device import resolve_device
from lyricgen.errors import Interrupted, UsageError
from lyricgen.models.charlm import CharLM
from lyricgen.presets import load_config
from lyricgen.run_folder import check_out_dir, clear_outputs, make_out_dir
from lyricgen.run_lock import RunLock
from lyricgen.training.distributed import world_from_env
from lyricgen.training.loop import Trainer
from lyricgen.training.reporting import Log, model_line
from lyricgen.training.setup import check_memory, set_up, training_batches

BACKENDS = tuple(models.BACKENDS)  # scratch, builtin
ROW_KEYS = ("epoch", "train_ppl", "val_ppl", "seconds", "tokens_per_s")


def compare(config_file: str | None, overrides: dict[str, Any], *, overwrite: bool = False,
            log: Log = print, progress_bar: bool = True) -> dict[str, Any]:
    """Train each backend in OUT/<backend>; write OUT/compare.{json,csv,png}; the report.
    OUT and each backend's folder are locked against other runs until it ends."""
    if world_from_env().distributed:
        raise UsageError("compare runs in one process; under torchrun, train with "
                         "`lyricgen train` instead")
    cfg = load_config(config_file, overrides)
    lock = RunLock()
    try:
        return run_comparison(cfg, overwrite, log, progress_bar, lock)
    finally:
        lock.release()


def run_comparison(cfg: Config, overwrite: bool, log: Log, progress_bar: bool, lock: RunLock
                   ) -> dict[str, Any]:
    out = Path(cfg.train.out)
    for folder in (out, *(out / backend for backend in BACKENDS)):
        lock.hold_if_there(folder)
    for backend in BACKENDS:
        check_out_dir(out / backend, fresh=False, overwrite=overwrite)
        if not overwrite and (out / backend / "last.pt").exists():
            raise UsageError(f"{out} already holds a comparison ({backend}/last.pt); start "
                             "over with --overwrite, or choose another --out")
    log(f"comparing {' and '.join(BACKENDS)} into {out}: {model_line(cfg)}")
    corpus = load_corpus(cfg.data)
    check_memory(cfg, len(corpus.vocab), resolve_device(cfg.train.device))
    report: dict[str, Any] = {"config": cfg.to_dict(), "agreement": agreement(cfg, corpus),
                              "backends": {}}
    make_out_dir(out)
    lock.hold(out)
    # The time limit is for the whole comparison: half each.
    half = cfg.train.time_limit / 2 if cfg.train.time_limit else None
    # The curves are compared to 4 digits: bfloat16 products only when asked for by name.
    matmul = "float32" if cfg.train.matmul == "auto" else cfg.train.matmul
    for backend in BACKENDS:
        run_cfg = replace(cfg, model=replace(cfg.model, backend=backend),
                          train=replace(cfg.train, out=str(out / backend), time_limit=half,
                                        matmul=matmul))
        log(f"--- {backend} ---")
        trainer = Trainer(set_up(run_cfg, corpus, log), out / backend, log=log,
                          progress_bar=progress_bar)
        make_out_dir(out / backend)
        lock.hold(out / backend)
        clear_outputs(out / backend)
        remove_stale_temporaries(out / backend)
        result = trainer.run()
        if result.exit_code:  # a signal: the comparison stops with that backend's run saved
            raise Interrupted(f"the comparison was {result.stop} during the {backend} run; "
                              f"`lyricgen train --resume --out {out / backend}` continues that "
                              "run, and `lyricgen compare --overwrite` starts the comparison "
                              "over", result.exit_code)
        report["backends"][backend] = {
            "parameters": sum(p.numel() for p in trainer.setup.model.parameters()),
            "tokens_per_s": speed(result.history, trainer),
            "epochs": [{k: row[k] for k in ROW_KEYS} for row in result.history],
        }
    report["summary"] = summarise(report)
    written = write_outputs(report, out, log)
    log(f"wrote {', '.join(map(str, written))}; each backend's run is in {out}/<backend>")
    return report


def agreement(cfg: Config, corpus: Corpus) -> dict[str, float]:
    """Max |difference| of logits and of gradients between the backends at the shared initial
    weights, on the first training batch, in float32 (as trained) and float64."""
    device = resolve_device(cfg.train.device)
    X, Y = training_batches(cfg, corpus, device, epoch=1).batch(0)
    result = {}
    for dtype, label in ((torch.float32, "float32"), (torch.float64, "float64")):
        outputs = []
        for backend in BACKENDS:
            torch.manual_seed(cfg.train.seed)
            # Dropout off through the config, not eval(): cuDNN's LSTM has no eval-mode backward.
            model_cfg = replace(cfg.model, backend=backend, dropout=0.0, embedding_dropout=0.0)
            model = CharLM(len(corpus.vocab), model_cfg).to(device=device, dtype=dtype)
            logits, _ = model(X)
            loss = F.cross_entropy(logits.flatten(0, 1), Y.flatten())
            outputs.append((logits.detach(), torch.autograd.grad(loss, list(model.parameters()))))
        (la, ga), (lb, gb) = outputs
        result[f"logits_max_abs_diff_{label}"] = (la - lb).abs().max().item()
        result[f"grad_max_abs_diff_{label}"] = max((a - b).abs().max().item()
                                                  for a, b in zip(ga, gb))
    return result


def speed(history: list[dict[str, Any]], trainer: Trainer) -> float:
    """Median tokens/s over the epochs after the first (the first pays for warm-up); the one
    epoch's, or the unfinished epoch's, when that is all there is."""
    rates = [row["tokens_per_s"] for row in history]
    if len(rates) > 1:
        return statistics.median(rates[1:])
    if rates:
        return rates[0]
    p, t = trainer.progress, trainer.cfg.train
    if not p.batch:
        raise UsageError("the time limit ended the comparison before one batch was trained; "
                         "give it more time")
    return p.batch * t.batch_size * t.num_steps / p.seconds


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    a, b = (report["backends"][name] for name in BACKENDS)
    rel = [abs(x["train_ppl"] - y["train_ppl"]) / y["train_ppl"]
           for x, y in zip(a["epochs"], b["epochs"])]
    return {
        "faster": BACKENDS[0] if a["tokens_per_s"] >= b["tokens_per_s"] else BACKENDS[1],
        "speedup_scratch_over_builtin": a["tokens_per_s"] / b["tokens_per_s"],
        "max_rel_train_ppl_diff": max(rel) if rel else None,
        "epochs_compared": len(rel),
    }


def write_outputs(report: dict[str, Any], out: Path, log: Log) -> list[Path]:
    """compare.json, compare.csv and (with matplotlib) compare.png: the files written."""
    (out / "compare.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    with (out / "compare.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["backend", *ROW_KEYS])
        for backend in BACKENDS:
            for row in report["backends"][backend]["epochs"]:
                writer.writerow([backend, *(row[k] for k in ROW_KEYS)])
    written = [out / "compare.json", out / "compare.csv"]
    try:
        plot(report, out / "compare.png")
    except ImportError:
        log("matplotlib is not installed, so no compare.png (pip install 'lyricgen[plot]'); "
            "compare.json and compare.csv are written")
        return written
    return [*written, out / "compare.png"]


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4.2),
                                       gridspec_kw={"width_ratios": [2, 1]})
    # Markers differ so that curves lying on top of each other (as they should) both show.
    for backend, color, marker in zip(BACKENDS, ("tab:blue", "tab:orange"), ("o", "x")):
        rows = report["backends"][backend]["epochs"]
        epochs = [r["epoch"] for r in rows]
        curves.plot(epochs, [r["train_ppl"] for r in rows], color=color, marker=marker,
                    label=f"{backend} train")
        if rows and rows[0]["val_ppl"] is not None:
            curves.plot(epochs, [r["val_ppl"] for r in rows], color=color, marker=marker,
                        linestyle="--", label=f"{backend} val")
    curves.set(xlabel="epoch", ylabel="perplexity", yscale="log", title="perplexity")
    curves.xaxis.get_major_locator().set_params(integer=True)
    curves.legend()
    speeds = [report["backends"][b]["tokens_per_s"] for b in BACKENDS]
    bars.bar(BACKENDS, speeds, color=["tab:blue", "tab:orange"])
    bars.set(ylabel="tokens / s", title="training speed")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
