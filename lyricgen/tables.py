"""Rich tables for the terminal: training summary and corpus description."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from lyricgen.errors import plural


class TrainingRun(Protocol):
    """What the summary reads of a run (training.loop.TrainResult has it)."""
    history: list[dict[str, Any]]  # metrics.jsonl's rows
    stop: str  # why it stopped
    out: Path
    best_epoch: float  # a fraction when best.pt holds an epoch the time limit cut
    partial: dict[str, Any] | None  # that epoch's row


def print_training_summary(result: TrainingRun, console: Console | None = None) -> None:
    console = console or Console()
    rows = [*result.history, *([result.partial] if result.partial else [])]
    if not rows:
        console.print(f"no epoch completed; {result.out / 'last.pt'} holds the run so far")
        return
    cache, lstm = "val_ppl_plain" in rows[0], "val_ppl_lstm" in rows[0]
    # Fits 80 columns (a pipe's width): short headers, no vertical rules, no cell wrapped.
    done = plural(len(result.history), "epoch")
    if result.partial:
        done += f" and {result.partial['epoch'] % 1:.0%} of the next"
    table = Table(title=f"training {result.stop}: {done}, best at "
                        f"epoch {result.best_epoch}", box=None, title_justify="left",
                  pad_edge=False, show_edge=False)
    keys = ["val_ppl", *(["val_ppl_plain"] if cache else []), *(["val_ppl_lstm"] if lstm else [])]
    columns = ["epoch", "train ppl", "val ppl", *(["no cache"] if cache else []),
               *(["LSTM alone"] if lstm else []), "seconds", "tokens/s", "lr"]
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    shown = rows if len(rows) <= 12 else rows[:5] + [None] + rows[-6:]
    for row in shown:
        if row is None:
            table.add_row(*["..."] + [""] * (len(columns) - 1))
            continue
        vals = [row.get(key) for key in keys]
        style = "bold green" if row["epoch"] == result.best_epoch else None
        table.add_row(str(row["epoch"]), f"{row['train_ppl']:.2f}",
                      *(f"{v:.2f}" if v is not None else "-" for v in vals),
                      f"{row['seconds']:.1f}", f"{row['tokens_per_s']:,.0f}",
                      f"{row['lr']:.3g}", style=style)
    console.print(table)
    if cache:
        console.print("val ppl is with the cache (lines sung again, a continuous cache and "
                      "exact repeats) over the held-out text already read; no cache is the "
                      "model without it, as "
                      "sample draws (it picks best.pt)")
    if lstm:
        console.print("the model is the LSTM mixed with n-gram counts of the training text "
                      "(--ngram-order); LSTM alone is the network by itself")
    best = result.out / "best.pt"
    shown = f"{best} (best), " if best.exists() else ""  # say only what is there
    console.print(f"checkpoints: {shown}{result.out / 'last.pt'}; "
                  f"metrics: {result.out / 'metrics.jsonl'}")


def print_comparison(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    runs, summary, agree = report["backends"], report["summary"], report["agreement"]
    names = list(runs)
    table = Table(title="scratch vs builtin")
    table.add_column("")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row("parameters", *(f"{runs[n]['parameters']:,}" for n in names))
    table.add_row("tokens/s", *(f"{runs[n]['tokens_per_s']:,.0f}" for n in names))
    epochs = [runs[n]["epochs"] for n in names]
    for i in range(max(map(len, epochs))):
        cells = [_ppl(rows[i]) if i < len(rows) else "" for rows in epochs]
        table.add_row(f"epoch {i + 1} train / val ppl", *cells)
    console.print(table)
    ratio = summary["speedup_scratch_over_builtin"]
    faster, slower = ("scratch", "builtin") if ratio >= 1 else ("builtin", "scratch")
    console.print(f"[bold]{faster} is {max(ratio, 1 / ratio):.2f}x as fast as {slower}[/bold]")
    if summary["max_rel_train_ppl_diff"] is not None:
        console.print(f"training perplexities agree within a relative "
                      f"{summary['max_rel_train_ppl_diff']:.1e} over "
                      f"{summary['epochs_compared']} epoch(s)")
    console.print(f"same starting weights: logits differ by at most "
                  f"{agree['logits_max_abs_diff_float32']:.1e} (float32), "
                  f"{agree['logits_max_abs_diff_float64']:.1e} (float64); gradients by "
                  f"{agree['grad_max_abs_diff_float32']:.1e} / "
                  f"{agree['grad_max_abs_diff_float64']:.1e}")


def _ppl(row: dict[str, Any]) -> str:
    val = f"{row['val_ppl']:.2f}" if row["val_ppl"] is not None else "-"
    return f"{row['train_ppl']:.2f} / {val}"


def print_data_info(info: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(show_header=False)
    table.add_row("corpus", info["corpus"])
    for key in ("chars", "vocab_size", "lines", "train_chars", "val_chars"):
        table.add_row(key.replace("_", " "), f"{info[key]:,}")
    common = "  ".join(f"{c!r} {n:,}" for c, n in info["most_common"])
    table.add_row("most common", common)
    console.print(table)

