"""CUDA: both backends' agreement with the CPU (the counts and songs too), short training runs
on each device (with and without CUDA graphs), and training speed on the GPU at the book's
setting and at hidden 1024 / batch 256.

    python benchmarks/gpu.py [--corpus ZIP] [--epochs 40] [--rounds 10] [--default-epochs 3]

Needs a CUDA device (never run by the tests). Speed figures are tokens/s of one epoch (the
Trainer's own metrics, synchronised by its end-of-epoch read of the loss), the trainers
alternated epoch by epoch in one process, the first epoch of each left out.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import DEFAULT_CORPUS, ROOT, alternate_epochs, quiet_trainer, record

from lyricgen.commands.compare import agreement
from lyricgen.config import Config, SampleConfig
from lyricgen.evaluate import evaluate
from lyricgen.songs.form import make_form
from lyricgen.presets import load_config
from lyricgen.data.corpus import load_corpus
from lyricgen.models import fast
from lyricgen.models.charlm import CharLM
from lyricgen.models.scratch import ScratchLSTM
from lyricgen.counts.text_counts import TextCounts
from lyricgen.sampler import generate
from lyricgen.copies import DEFAULT_RUN, CopyIndex
from lyricgen.songs.songwriter import Songwriter, SongRequest
from lyricgen.training.setup import training_batches

BACKENDS = ("scratch", "builtin")
CURVE_EPOCHS = (1, 10, 20, 30, 40)


def book_config(backend: str, corpus: Path, **overrides) -> Config:
    return load_config(ROOT / "configs" / f"d2l-{backend}.toml",
                       {"data": str(corpus), "preview_every": 0, **overrides})


def large_config(backend: str, corpus: Path, **overrides) -> Config:
    """The book's setting scaled up: hidden 1024, batch 256, the whole text."""
    cfg = book_config(backend, corpus, hidden_size=1024, batch_size=256, **overrides)
    cfg.data.max_chars = None
    return cfg


def device_parity(cfg: Config, dtype: torch.dtype, device: str) -> tuple[float, float]:
    """Max |CPU - device| of the logits and of the gradients, same weights, first batch."""
    corpus = load_corpus(cfg.data, progress=False)
    torch.manual_seed(cfg.train.seed)
    cpu_model = CharLM(len(corpus.vocab), cfg.model).to(dtype=dtype)  # no dropout in the preset
    results = []
    for model in (cpu_model, copy.deepcopy(cpu_model).to(device)):
        X, Y = training_batches(cfg, corpus, model.head.weight.device, epoch=1).batch(0)
        logits, _ = model(X)
        loss = F.cross_entropy(logits.flatten(0, 1), Y.flatten())
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((logits.detach().cpu(), [g.cpu() for g in grads]))
    (la, ga), (lb, gb) = results
    return ((la - lb).abs().max().item(),
            max((a - b).abs().max().item() for a, b in zip(ga, gb)))


def kernel_parity(device: str) -> tuple[float, float]:
    """Max |difference| of outputs and of gradients between the scratch LSTM on its Triton
    path and on its readable one: 2 layers, one-hot input, book sizes."""
    torch.manual_seed(0)
    quick = ScratchLSTM(50, 256, 2, onehot=True).to(device)
    readable = copy.deepcopy(quick)
    readable.fast = False
    ids = torch.randint(0, 50, (32, 35), device=device)
    results = []
    for model in (quick, readable):
        out, (h, c) = model(ids)
        loss = (out * out.detach().roll(1, 0)).sum() + (h * h.detach()).sum() + c.sum()
        results.append((out.detach(), torch.autograd.grad(loss, list(model.parameters()))))
    (oa, ga), (ob, gb) = results
    return ((oa - ob).abs().max().item(),
            max((a - b).abs().max().item() for a, b in zip(ga, gb)))


def parity_lines(corpus: Path, device: str) -> list[str]:
    lines = ["CUDA vs CPU, same initial weights, the first batch of the book's setting "
             "(max absolute difference):", "",
             "| backend | dtype | logits | gradients |", "|---|---|---|---|"]
    for backend in BACKENDS:
        for dtype in (torch.float32, torch.float64):
            logits, grads = device_parity(book_config(backend, corpus), dtype, device)
            lines.append(f"| {backend} | {str(dtype).split('.')[1]} | {logits:.1e} | "
                         f"{grads:.1e} |")
    cfg = book_config("scratch", corpus, device=device)
    across = agreement(cfg, load_corpus(cfg.data, progress=False))
    lines += ["", "scratch vs builtin on CUDA (`lyricgen compare`'s agreement check): "
              + ", ".join(f"{k} {v:.1e}" for k, v in across.items()), ""]
    path = fast.choose(torch.zeros(1, device=device))
    if path.kernels is None:
        lines += [f"No Triton path here ({path.why}): the scratch LSTM runs its readable path "
                  "on CUDA.", ""]
    else:
        outputs, grads = kernel_parity(device)
        lines += [f"The scratch LSTM's Triton path vs its readable one on {device} "
                  f"(float32, 2 layers, B 32, T 35, H 256): outputs {outputs:.1e}, "
                  f"gradients {grads:.1e}", ""]
    return lines


def counts_lines(corpus: Path, device: str) -> list[str]:
    """The counts beside the LSTM on `device` against the CPU: validation with them mixed in,
    and greedy text from the mixed stepper."""
    cfg = load_config(None, {"data": str(corpus), "hidden_size": 256, "embedding_size": 256})
    text = load_corpus(cfg.data, progress=False)
    counts = TextCounts.count(text.train_ids, len(text.vocab), cfg.model.ngram_order,
                              text.vocab.index.get("\n"))
    torch.manual_seed(0)
    model = CharLM(len(text.vocab), cfg.model)
    runs = []
    copies = CopyIndex(text.ids, text.vocab, DEFAULT_RUN)  # the copy guard, on each device too
    for on in ("cpu", device):
        model.to(on)
        counts.to(on)
        copies.to(on)
        val = evaluate(model, text.val_ids, cfg.train.num_steps, counts=counts)
        drawn = generate(model.eval(), text.vocab.encode("分开"),
                         SampleConfig(length=50, greedy=True, candidates=1),
                         counts=(counts, even_weights(counts)), guard=copies)
        runs.append((val.loss, val.count_weights, drawn,
                     songs_on(model, text.vocab, counts, copies)))
    (cpu_loss, cpu_w, cpu_text, cpu_songs), (gpu_loss, gpu_w, gpu_text, gpu_songs) = runs
    return [f"Counts beside the LSTM (untrained 256-unit model), {device} vs CPU: validation "
            f"loss {abs(gpu_loss - cpu_loss):.1e} apart, learned weights "
            f"{max(abs(a - b) for x, y in zip(cpu_w, gpu_w) for a, b in zip(x, y)):.1e} apart, "
            f"50 greedy characters "
            f"of the mix (copy guard on) {'the same' if cpu_text == gpu_text else 'different'}",
            "",
            f"Songs (the same model and counts): greedy 8-line AABB songs "
            f"{'the same' if cpu_songs[0] == gpu_songs[0] else 'different'} on {device} and "
            f"the CPU; 10 sampled songs with 16 candidates each hold their form (8 lines of 7-9 "
            f"characters, AABB) on {device}: {gpu_songs[1]}, in {gpu_songs[2]:.2f} s "
            f"(CPU: {cpu_songs[1]}, {cpu_songs[2]:.2f} s)", ""]


def even_weights(counts: TextCounts) -> list[list[float]]:
    """Weights per level and expert that give the counts, every expert alike, half the mix."""
    experts = counts.experts()
    return [[0.5 / experts] * experts for _ in range(counts.order)]


def songs_on(model: CharLM, vocab, counts: TextCounts, copies: CopyIndex
             ) -> tuple[list[str], bool, float]:
    """Songs on the model's device, guarded against copies: greedy ones, whether 10 sampled
    ones hold their form, and the seconds those took."""
    device = model.head.weight.device
    form = make_form(8, "7-9", "AABB", None, None)
    ids = [vocab.index["\n"]]
    mixed = (counts, even_weights(counts))
    writer = Songwriter(model, vocab, copies, mixed)
    greedy = writer.write(SongRequest(ids, "", form, SampleConfig(lines=8, greedy=True)))
    generator = torch.Generator(device).manual_seed(0)
    began = time.perf_counter()
    songs = writer.write(SongRequest(ids, "", form, SampleConfig(
        lines=8, candidates=16, num_samples=10), generator))
    seconds = time.perf_counter() - began
    held = all(len(song) == 8  # AABB repeated: line i rhymes with line 0 (A) or 2 (B)
               and all(7 <= sum(not c.isspace() for c in x.text) <= 9 for x in song)
               and all(song[i].rhyme == song[i % 4 // 2 * 2].rhyme for i in range(8))
               for song in songs)
    return ["\n".join(x.text for x in song) for song in greedy], held, seconds


def curve_lines(corpus: Path, epochs: int, device: str) -> list[str]:
    """The book's presets trained from the same seed on the CPU, and on `device` with and
    without CUDA graphs: training perplexity."""
    shown = [e for e in CURVE_EPOCHS if e <= epochs]
    lines = [f"Training perplexity, the book's presets, {epochs} epochs from the same seed:", "",
             "| preset | device | " + " | ".join(f"epoch {e}" for e in shown) + " |",
             "|---|---|" + "---|" * len(shown)]
    runs = [("cpu", False), (device, True), (device, False)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (backend, (on, graphs)) in enumerate((b, r) for b in BACKENDS for r in runs):
            cfg = book_config(backend, corpus, device=on, cuda_graphs=graphs, epochs=epochs)
            history = quiet_trainer(cfg, Path(tmp) / str(i)).run().history
            where = on if on == "cpu" else f"{on}, {'graphed' if graphs else 'eager'}"
            lines.append(f"| d2l-{backend} | {where} | "
                         + " | ".join(f"{history[e - 1]['train_ppl']:.2f}" for e in shown) + " |")
    return lines + [""]


def default_preset_lines(corpus: Path, epochs: int, device: str) -> list[str]:
    """`lyricgen train`'s default preset (embedding, dropout, tying, AdamW, plateau schedule,
    cache evaluation) on `device`, graphed and eager."""
    lines = [f"The default preset on {device}, {epochs} epochs, validation perplexity "
             "(cache / plain, the LSTM with the counts) and tokens/s of the last epoch:", ""]
    with tempfile.TemporaryDirectory() as tmp:
        for graphs in (True, False):
            cfg = load_config(None, {"data": str(corpus), "device": device, "epochs": epochs,
                                     "cuda_graphs": graphs, "preview_every": 0})
            rows = quiet_trainer(cfg, Path(tmp) / str(graphs)).run().history
            lines.append(f"- {'graphed' if graphs else 'eager'}: " + ", ".join(
                f"{r['val_ppl']:.1f} / {r['val_ppl_plain']:.1f} (LSTM alone "
                f"{r['val_ppl_lstm']:.1f})" for r in rows)
                + f"; {rows[-1]['tokens_per_s']:,.0f} tokens/s")
    return lines + [""]


def speed_lines(corpus: Path, rounds: int, device: str) -> list[str]:
    settings = {"book setting (hidden 256, batch 32)": book_config,
                "hidden 1024, batch 256, whole text": large_config}
    runs = {  # name: (backend, CUDA graphs, step kernels)
        "scratch graphed": ("scratch", True, True),
        "scratch graphed, readable": ("scratch", True, False),
        "scratch eager": ("scratch", False, True),
        "builtin graphed": ("builtin", True, True),
        "builtin eager": ("builtin", False, True)}
    ratios = {"scratch / builtin, graphed": ("scratch graphed", "builtin graphed"),
              "graphed / eager, scratch": ("scratch graphed", "scratch eager"),
              "graphed / eager, builtin": ("builtin graphed", "builtin eager"),
              "Triton path / readable, graphed": ("scratch graphed",
                                                  "scratch graphed, readable")}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for i, (setting, make) in enumerate(settings.items()):
            for j, (name, (backend, graphs, kernels)) in enumerate(runs.items()):
                cfg = make(backend, corpus, device=device, cuda_graphs=graphs)
                trainers[(setting, name)] = quiet_trainer(cfg, Path(tmp) / f"{i}-{j}")
                if not kernels:
                    trainers[(setting, name)].setup.model.rnn.fast = False
        speeds = alternate_epochs(trainers, rounds)  # round 0 also records the graphs
    lines = [f"Training speed on {device}, tokens/s, median of rounds (range). graphed: the "
             "step replayed from a CUDA graph (the default); eager: `--no-cuda-graphs`; "
             "readable: the scratch LSTM's readable path instead of its Triton one:", ""]
    for setting in settings:
        lines += [f"{setting}:", "", "| run | tokens/s |", "|---|---|"]
        lines += [f"| {name} | {statistics.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f}) |"
                  for name in runs for v in [speeds[(setting, name)]]]
        lines.append("")
        for what, (a, b) in ratios.items():
            per_round = [x / y for x, y in zip(speeds[(setting, a)], speeds[(setting, b)])]
            lines.append(f"- {what}: **{statistics.median(per_round):.2f}x**")
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--default-epochs", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu.py needs a CUDA device")
    gpu = torch.cuda.get_device_properties(0)
    lines = [f"GPU: {gpu.name}, {gpu.multi_processor_count} SMs, "
             f"{gpu.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, "
             f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
             f"TF32 cuDNN {torch.backends.cudnn.allow_tf32}", ""]
    lines += parity_lines(args.corpus, "cuda")
    lines += counts_lines(args.corpus, "cuda")
    lines += curve_lines(args.corpus, args.epochs, "cuda")
    lines += default_preset_lines(args.corpus, args.default_epochs, "cuda")
    lines += speed_lines(args.corpus, args.rounds, "cuda")
    record("CUDA: parity with the CPU, training curves, speed (gpu.py)",
           f"python benchmarks/gpu.py --epochs {args.epochs} --rounds {args.rounds} "
           f"--default-epochs {args.default_epochs}", lines)


if __name__ == "__main__":
    main()
