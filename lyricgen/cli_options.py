"""The command line's option types, defined once: `Annotated` types that cli.py's commands share,
each with a full-sentence help."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from lyricgen.config import DataConfig, SampleConfig, TrainConfig
from lyricgen.models.charlm import ModelConfig

D, M, T, S = DataConfig(), ModelConfig(), TrainConfig(), SampleConfig()

ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", help="A TOML preset (see configs/); options given on the command line win.")]
Data = Annotated[Optional[str], typer.Option(
    help=f"A .txt file, a .zip, a folder of .txt files, or a dataset name (default: {D.data}).")]
Newlines = Annotated[Optional[Literal["keep", "space"]], typer.Option(
    help=f"Keep newlines, or turn each into a space as the book does (default: {D.newlines}).")]
MaxChars = Annotated[Optional[int], typer.Option(
    help="Use only the first N characters of the corpus (the book uses 10000).")]
ValFraction = Annotated[Optional[float], typer.Option(
    help=f"Fraction of the text held out at its end for validation; 0 disables it "
         f"(default: {D.val_fraction}).")]
Backend = Annotated[Optional[str], typer.Option(
    help=f"LSTM implementation: scratch (hand-written) or builtin (torch.nn.LSTM) "
         f"(default: {M.backend}).")]
Input = Annotated[Optional[Literal["onehot", "embedding"]], typer.Option(
    "--input", help=f"How characters enter the LSTM (default: {M.input}).")]
EmbeddingSize = Annotated[Optional[int], typer.Option(
    help=f"Size of the learned character embedding (default: {M.embedding_size}).")]
HiddenSize = Annotated[Optional[int], typer.Option(
    help=f"Hidden units per LSTM layer (default: {M.hidden_size}).")]
NumLayers = Annotated[Optional[int], typer.Option(
    help=f"Number of stacked LSTM layers (default: {M.num_layers}).")]
Dropout = Annotated[Optional[float], typer.Option(
    help=f"Dropout between layers and before the output layer (default: {M.dropout}).")]
EmbeddingDropout = Annotated[Optional[float], typer.Option(
    help=f"Dropout on the embedded characters (default: {M.embedding_dropout}).")]
TieWeights = Annotated[Optional[bool], typer.Option(
    "--tie-weights/--no-tie-weights",
    help="Let the output layer share the embedding matrix (needs --embedding-size equal to "
         f"--hidden-size) (default: {M.tie_weights}).")]
Init = Annotated[Optional[Literal["uniform", "normal"]], typer.Option(
    help=f"Initial weights: nn.LSTM's uniform rule, or the book's N(0, 0.01) with zero biases "
         f"(default: {M.init}).")]
NumSteps = Annotated[Optional[int], typer.Option(
    help=f"Characters per training sequence (BPTT length) (default: {T.num_steps}).")]
BatchSize = Annotated[Optional[int], typer.Option(
    help=f"Sequences per batch (default: {T.batch_size}).")]
Sampling = Annotated[Optional[Literal["adjacent", "random"]], typer.Option(
    help=f"Consecutive windows with the state carried, or random windows (default: "
         f"{T.sampling}).")]
Optimizer = Annotated[Optional[Literal["sgd", "adam", "adamw"]], typer.Option(
    help=f"The optimizer (default: {T.optimizer}).")]
Lr = Annotated[Optional[float], typer.Option(help=f"Learning rate (default: {T.lr}).")]
WeightDecay = Annotated[Optional[float], typer.Option(
    help=f"Weight decay (default: {T.weight_decay}).")]
Clip = Annotated[Optional[float], typer.Option(
    help=f"Clip the global gradient norm to this value; 0 does not clip (default: {T.clip}).")]
Epochs = Annotated[Optional[int], typer.Option(help=f"Epochs to train (default: {T.epochs}).")]
TimeLimit = Annotated[Optional[float], typer.Option(
    help="Stop cleanly after this many minutes of training, checkpoints written.")]
LrSchedule = Annotated[Optional[Literal["none", "halve", "plateau"]], typer.Option(
    help="halve: halve the lr when an epoch's training loss went up; plateau: halve it after "
         f"--plateau-patience epochs without improvement (default: {T.lr_schedule}).")]
PlateauPatience = Annotated[Optional[int], typer.Option(
    help=f"Epochs without improvement before the plateau schedule halves the lr "
         f"(default: {T.plateau_patience}).")]
Patience = Annotated[Optional[int], typer.Option(
    help="Stop early after this many epochs without improvement; 0 never stops early.")]
CacheEval = Annotated[Optional[bool], typer.Option(
    "--cache-eval/--no-cache-eval",
    help="Report val_ppl with a continuous cache over the held-out text already read (lyrics "
         "repeat lines); the plain figure is kept as val_ppl_plain "
         f"(default: {T.cache_eval}).")]
Seed = Annotated[Optional[int], typer.Option(
    help=f"Random seed for weights, batches and dropout (default: {T.seed}).")]
Device = Annotated[Optional[str], typer.Option(
    help="auto (CUDA when present), cpu or cuda (default: auto).")]
CudaGraphs = Annotated[Optional[bool], typer.Option(
    "--cuda-graphs/--no-cuda-graphs",
    help="On CUDA, record the training step once as a CUDA graph and replay it for every "
         "batch: one launch instead of hundreds of small kernels, much faster for small "
         f"models (default: {T.cuda_graphs}).")]
Out = Annotated[Optional[str], typer.Option(
    help=f"Folder for checkpoints and metrics (default: {T.out}).")]
PreviewEvery = Annotated[Optional[int], typer.Option(
    help="Print greedy samples of each --prefix every N epochs; 0 never.")]
Prefixes = Annotated[Optional[list[str]], typer.Option(
    "--prefix", help="A prefix to continue; repeat the option for several.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Overwrite = Annotated[bool, typer.Option(
    help="Start over in an --out folder that already holds a run.")]


