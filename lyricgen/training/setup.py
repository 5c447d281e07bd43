"""Everything a run trains with, made before the loop: device, seeded model, optimizer, the
step (plain or replayed from a CUDA graph), and the batches of each epoch."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from lyricgen.data.batching import Batches, RowShard, make_batches
from lyricgen.config import Config, TrainConfig
from lyricgen.data.corpus import Corpus
from lyricgen.device import resolve_device
from lyricgen.errors import LyricgenError, UsageError, plural
from lyricgen.memory import human_bytes, require
from lyricgen.presets import option_name
from lyricgen.models import fast
from lyricgen.counts.mixing import Counts
from lyricgen.models.charlm import CharLM
from lyricgen.counts.text_counts import TextCounts
from lyricgen.training import precision
from lyricgen.training.distributed import World
from lyricgen.training.reporting import Log
from lyricgen.training.step import CudaGraphs, GraphedStep, TrainStep


@dataclass
class Setup:
    cfg: Config
    corpus: Corpus
    device: torch.device
    model: CharLM
    optimizer: torch.optim.Optimizer
    step: TrainStep | GraphedStep
    world: World = World()
    counts: TextCounts | None = None  # mixed with the LSTM in validation and sampling (mixing.py)

    def finite(self) -> bool:
        """Whether the weights and the optimizer's state are all finite (one sync)."""
        tensors = [*self.model.parameters(),
                   *(v for state in self.optimizer.state.values() for v in state.values()
                     if torch.is_tensor(v) and v.is_floating_point())]
        # (Adam's step counts may live on the CPU when the weights do not.)
        return bool(torch.stack([t.isfinite().all().to(self.device) for t in tensors]).all())

    def mixed_counts(self, history: list[dict]) -> Counts | None:
        """The counts with the weights the last validation learned (none before the first)."""
        weights = next((row["count_weights"] for row in reversed(history)
                        if "count_weights" in row), None)
        return None if self.counts is None or weights is None else (self.counts, weights)

    def saved_counts(self, history: list[dict]) -> dict | None:
        """The counts as a checkpoint keeps them, with the weights the last validation in
        `history` (rows, some perhaps empty) learned."""
        mixed = self.mixed_counts(history)
        return None if mixed is None else {**mixed[0].state_dict(), "weights": mixed[1]}

    def batches(self, epoch: int) -> Batches:
        """This process's rows of the epoch's batches (all of them in one process)."""
        batches = training_batches(self.cfg, self.corpus, self.device, epoch)
        if not self.world.distributed:
            return batches
        return RowShard(batches, self.world.rows(self.cfg.train.batch_size))


def set_up(cfg: Config, corpus: Corpus, log: Log = print, world: World = World()) -> Setup:
    """The run's parts; the text's fitness for them is checked first. With several processes
    (`world`), each has its rows of every batch and the model is wrapped in
    DistributedDataParallel for the step."""
    device = resolve_device(cfg.train.device)
    if world.distributed:
        if cfg.train.batch_size % world.size:
            raise UsageError(f"--batch-size {cfg.train.batch_size} must be a multiple of the "
                             f"{world.size} processes, which share each batch's rows")
        if device.type == "cuda":
            device = torch.device("cuda", world.local_rank)  # one GPU per local rank
    try:  # the text is too short for a batch: fail now, naming the cause
        training_batches(cfg, corpus, device, 1)
    except LyricgenError as e:
        if len(corpus.val_ids) > len(corpus.train_ids):  # the held-out part took most of it
            raise LyricgenError(f"--val-fraction {cfg.data.val_fraction:g} leaves "
                                f"{plural(len(corpus.train_ids), 'character')} to train on: {e}; lower "
                                "--val-fraction") from None
        raise
    if len(corpus.val_ids) == 1:
        raise LyricgenError("the validation part is a single character; raise "
                            "--val-fraction or set it to 0")
    check_memory(cfg, len(corpus.vocab), device)  # before anything big is allocated
    torch.manual_seed(cfg.train.seed)  # the initial weights
    model = CharLM(len(corpus.vocab), cfg.model).to(device)
    if cfg.model.backend == "scratch":  # loaded here, before anything is timed
        note = fast.choose(model.head.weight).note()
        if note:
            log(note)
    graphs = cfg.train.cuda_graphs and device.type == "cuda"
    if graphs and world.distributed:  # DDP all-reduces gradients from hooks outside a recording
        log("note: CUDA graphs are off with several processes: DistributedDataParallel reduces "
            "the gradients outside the recorded step")
        graphs = False
    optimizer = make_optimizer(model, cfg.train, capturable=graphs)
    # On the CPU torch runs nn.LSTM through oneDNN, whose backward always computes the input's
    # gradient: for one-hot input a dense (T B, V) x (V, 4H) product nobody needs. torch's own
    # kernels skip it (with embedding input, which needs that gradient, oneDNN is the faster).
    onednn = not (cfg.model.backend == "builtin" and cfg.model.input == "onehot"
                  and device.type == "cpu")
    stepped = model
    if world.distributed:  # averages the gradients over the processes in backward
        stepped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    bfloat16, note = precision.choose(cfg.train.matmul, device)
    if note:
        log(note)
    step = TrainStep(stepped, optimizer, cfg.train.clip, onednn=onednn, bfloat16=bfloat16)
    if graphs:
        step = GraphedStep(step, CudaGraphs(device), log)
    # The counts need held-out text to learn their weights; without it the LSTM is alone.
    counts = None
    if not len(corpus.val_ids) and cfg.data.val_fraction:
        log(f"note: --val-fraction {cfg.data.val_fraction:g} holds out no character of this "
            "text: the run has no validation (raise it, or set 0 to say so)")
    if cfg.model.ngram_order and len(corpus.val_ids):
        counts = TextCounts.count(corpus.train_ids, len(corpus.vocab), cfg.model.ngram_order,
                                  corpus.vocab.index.get("\n"))
    elif cfg.model.ngram_order:
        log(f"note: the counts (--ngram-order {cfg.model.ngram_order}) learn their weights on "
            "held-out text, and there is none: the LSTM is alone (--ngram-order 0 says so)")
    return Setup(cfg, corpus, device, model, optimizer, step, world,
                 counts.to(device) if counts is not None else None)


def make_optimizer(model: torch.nn.Module, t: TrainConfig, capturable: bool = False
                   ) -> torch.optim.Optimizer:
    """Adam(W): the fused implementation (one kernel for all parameters) where this torch has
    it, else the multi-tensor (foreach) one; SGD: foreach (on CPU fused SGD is the slower,
    fused Adam the faster). `capturable`: Adam(W) keeps its step count on the device, so that
    a CUDA graph can record its update."""
    kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    settings = dict(lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer != "sgd":
        settings["capturable"] = capturable
        try:
            return kind[t.optimizer](model.parameters(), fused=True, **settings)
        except (RuntimeError, TypeError, ValueError):
            pass
    return kind[t.optimizer](model.parameters(), foreach=True, **settings)


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved optimizer state, keeping this run's `capturable` (a run started on the CPU
    and resumed on CUDA records its step as a graph, which needs it; load_state_dict would
    bring back the saved False)."""
    capturable = [group.get("capturable") for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flag in zip(optimizer.param_groups, capturable):
        if flag is not None:
            group["capturable"] = flag
            if flag:  # a capturable step count lives on its parameter's device
                for p in group["params"]:
                    st = optimizer.state.get(p, {})
                    if torch.is_tensor(st.get("step")):
                        st["step"] = st["step"].to(p.device, torch.float32)


def training_batches(cfg: Config, corpus: Corpus, device: torch.device, epoch: int) -> Batches:
    """The batches of `epoch`: their order depends on (seed, epoch) alone, so resuming needs
    no data-order state."""
    t = cfg.train
    generator = torch.Generator().manual_seed((t.seed * 1_000_003 + epoch) % 2**63)
    return make_batches(corpus.train_ids, t.batch_size, t.num_steps, t.sampling, device,
                        generator)


# --- memory -------------------------------------------------------------------------------------

SIZES = ("hidden_size", "embedding_size", "num_layers", "batch_size", "num_steps")
FLOAT32 = 4  # bytes


def memory_estimate(cfg: Config, vocab_size: int) -> int:
    """Bytes a run needs, roughly, in float32 (P parameters; B batch, T steps, L layers):
        P for the weights, P for their gradients, 2 P for Adam(W)'s two moments (SGD: none);
        one batch's activations kept for the backward pass, B T values of: per layer the four
        gates before and after their nonlinearity, the cell and the output (10 H), the input
        (E, or V one-hot) and the logits with their softmax and its gradient (3 V)."""
    m, t = cfg.model, cfg.train
    P = cfg.model.parameter_count(vocab_size)
    states = 2 if t.optimizer in ("adam", "adamw") else 0
    width = m.embedding_size if m.input == "embedding" else vocab_size
    per_position = m.num_layers * 10 * m.hidden_size + width + 3 * vocab_size
    return FLOAT32 * (P * (2 + states) + t.batch_size * t.num_steps * per_position)


def check_memory(cfg: Config, vocab_size: int, device: torch.device,
                 available: int | None = None) -> None:
    """Refuse settings whose memory_estimate exceeds the memory available, naming the size
    whose halving would save the most, before any of it is allocated."""
    need = memory_estimate(cfg, vocab_size)

    def refusal(have: int) -> str:
        key = max(SIZES, key=lambda k: need - memory_estimate(halved(cfg, k), vocab_size))
        option = option_name(key)
        where = "this machine has" if device.type == "cpu" else f"{device} has"
        return (f"{option} {cfg.value(key)} needs about {human_bytes(need)} of memory (weights, "
                f"gradients, optimizer state and one batch's activations), but {where} "
                f"{human_bytes(have)} free; lower {option}")

    require(need, device, refusal, available)


def halved(cfg: Config, key: str) -> Config:
    section = "train" if key in ("batch_size", "num_steps") else "model"
    part = getattr(cfg, section)
    return replace(cfg, **{section: replace(part, **{key: max(getattr(part, key) // 2, 1)})})
