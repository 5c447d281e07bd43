"""The command line's option types, defined once: `Annotated` types that cli.py's commands share,
each with a full-sentence help."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from lyricgen.config import REPETITION_PENALTY, DataConfig, SampleConfig, TrainConfig
from lyricgen.copies import DEFAULT_RUN
from lyricgen.models import BACKENDS
from lyricgen.models.charlm import ModelConfig

D, M, T, S = DataConfig(), ModelConfig(), TrainConfig(), SampleConfig()

# The commands' own defaults are None, so that an option given is told from one left to
# --config or the built-in default; help shows the built-in default as typer shows its own.


def default(value: object) -> str:
    shown = ", ".join(value) if isinstance(value, list) else value
    return f"  [default: {shown}]"


def flag_default(name: str, on: bool) -> str:
    return default(name if on else f"no-{name}")


BACKEND, DEVICE = f"<{'|'.join(BACKENDS)}>", "<auto|cpu|cuda[:N]>"  # training's and sampling's


ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", help="A TOML preset (see configs/); options given on the command line win.")]
Data = Annotated[Optional[str], typer.Option(
    metavar="<path|name>",
    help="A .txt file, a .zip, a folder of .txt files, or a dataset name." + default(D.data))]
Newlines = Annotated[Optional[Literal["keep", "space"]], typer.Option(
    help="Keep newlines, or turn each into a space as the book does." + default(D.newlines))]
MaxChars = Annotated[Optional[int], typer.Option(
    help="Use only the first N characters of the corpus (the book uses 10000).")]
ValFraction = Annotated[Optional[float], typer.Option(
    help="Fraction of the text held out at its end for validation; 0 disables it."
         + default(D.val_fraction))]
Script = Annotated[Optional[Literal["keep", "simplified", "traditional"]], typer.Option(
    help="Convert Chinese text to one script with OpenCC, or keep it as it is."
         + default("simplified for the jaychou dataset, else keep"))]
TidySpaces = Annotated[Optional[bool], typer.Option(
    "--tidy-spaces/--keep-spaces",
    help="Make every run of spaces (full-width ones too) one space, and strip each line's ends."
         + default("tidy-spaces for the jaychou dataset, else keep-spaces"))]
DropLines = Annotated[Optional[str], typer.Option(
    metavar="<regex|credits>",
    help="Drop the corpus's lines where this regular expression matches; 'credits' drops credit "
         "lines (作词, 作曲, 歌词提供...) and '' none."
         + default("credits and the artist's name for the jaychou dataset, else none"))]
Backend = Annotated[Optional[str], typer.Option(
    metavar=BACKEND, help="LSTM implementation: scratch (hand-written) or builtin (torch.nn.LSTM)."
         + default(M.backend))]
Input = Annotated[Optional[Literal["onehot", "embedding"]], typer.Option(
    "--input", help="How characters enter the LSTM." + default(M.input))]
EmbeddingSize = Annotated[Optional[int], typer.Option(
    help="Size of the learned character embedding." + default(M.embedding_size))]
HiddenSize = Annotated[Optional[int], typer.Option(
    help="Hidden units per LSTM layer." + default(M.hidden_size))]
NumLayers = Annotated[Optional[int], typer.Option(
    help="Number of stacked LSTM layers." + default(M.num_layers))]
SIZED = default("sized to the corpus and the time given, and raised while the held-out "
                "figure stalls as training improves, unless a preset sets it")
Dropout = Annotated[Optional[float], typer.Option(
    help="Dropout between layers and before the output layer." + SIZED)]
EmbeddingDropout = Annotated[Optional[float], typer.Option(
    help="Dropout on the embedded characters." + SIZED)]
TieWeights = Annotated[Optional[bool], typer.Option(
    "--tie-weights/--no-tie-weights",
    help="Let the output layer share the embedding matrix (with --input embedding; when "
         "--hidden-size differs from --embedding-size, a projection bridges the two)."
         + flag_default("tie-weights", M.tie_weights))]
Init = Annotated[Optional[Literal["uniform", "normal"]], typer.Option(
    help="Initial weights: nn.LSTM's uniform rule, or the book's N(0, 0.01) with zero biases."
         + default(M.init))]
NgramOrder = Annotated[Optional[int], typer.Option(
    help="Mix the LSTM with n-gram counts of the training text of each order up to this one, "
         "weights learned on the held-out text (which it needs); 0 leaves the LSTM alone."
         + default(M.ngram_order))]
NumSteps = Annotated[Optional[int], typer.Option(
    help="Characters per training sequence (BPTT length)." + default(T.num_steps))]
BatchSize = Annotated[Optional[int], typer.Option(
    help="Sequences per batch." + default(T.batch_size))]
Sampling = Annotated[Optional[Literal["adjacent", "random"]], typer.Option(
    help="Consecutive windows with the state carried, or random windows."
         + default(T.sampling))]
Optimizer = Annotated[Optional[Literal["sgd", "adam", "adamw"]], typer.Option(
    help="The optimizer." + default(T.optimizer))]
Lr = Annotated[Optional[float], typer.Option(help="Learning rate." + default(T.lr))]
WeightDecay = Annotated[Optional[float], typer.Option(help="Weight decay." + SIZED)]
Clip = Annotated[Optional[float], typer.Option(
    help="Clip the global gradient norm to this value; 0 does not clip." + default(T.clip))]
Epochs = Annotated[Optional[int], typer.Option(help="Epochs to train." + default(T.epochs))]
TimeLimit = Annotated[Optional[float], typer.Option(
    help="Stop cleanly after this many minutes of training; the epoch it cuts is validated.")]
LrSchedule = Annotated[Optional[Literal["none", "halve", "plateau"]], typer.Option(
    help="halve: halve the lr when an epoch's training loss went up; plateau: halve it after "
         "--plateau-patience epochs without improvement; never below 1/1000 of --lr."
         + default(T.lr_schedule))]
PlateauPatience = Annotated[Optional[int], typer.Option(
    help="Epochs without improvement before the plateau schedule halves the lr."
         + default(T.plateau_patience))]
Patience = Annotated[Optional[int], typer.Option(
    help="Stop early after this many epochs without improvement; 0 never stops early."
         + default(T.patience))]
CacheEval = Annotated[Optional[bool], typer.Option(
    "--cache-eval/--no-cache-eval",
    help="Report val_ppl with a memory of the held-out text already read: its lines sung "
         "again, a continuous cache and exact repeats; the plain figure is val_ppl_plain."
         + flag_default("cache-eval", T.cache_eval))]
Seed = Annotated[Optional[int], typer.Option(
    help="Random seed for weights, batches and dropout, from 0 to 2**63 - 1."
         + default(T.seed))]
Device = Annotated[Optional[str], typer.Option(
    metavar=DEVICE, help="auto: CUDA when present, else the CPU." + default(T.device))]
CudaGraphs = Annotated[Optional[bool], typer.Option(
    "--cuda-graphs/--no-cuda-graphs",
    help="On CUDA, record the training step once as a CUDA graph and replay it for every "
         "batch: one launch instead of hundreds of small kernels, much faster for small "
         "models." + flag_default("cuda-graphs", T.cuda_graphs))]
Matmul = Annotated[Optional[Literal["auto", "float32", "bfloat16"]], typer.Option(
    help="How training multiplies matrices on the CPU: float32, or bfloat16 inputs with float32 "
         "sums (about 1.8x faster training on CPUs with AMX, inputs rounded to ~0.3%); auto "
         "takes bfloat16 where the CPU has AMX (compare: float32). Validation and sampling "
         "always use float32."
         + default(T.matmul))]
Out = Annotated[Optional[str], typer.Option(
    metavar="<folder>", help="Folder for checkpoints and metrics." + default(T.out))]
COMPARE_OUT = "checkpoints/compare"
CompareOut = Annotated[Optional[str], typer.Option(
    metavar="<folder>", help="Folder for the comparison; each backend's run goes into a "
                             "subfolder." + default(COMPARE_OUT))]
PreviewEvery = Annotated[Optional[int], typer.Option(
    help="Print greedy samples of each --prefix every N epochs; 0 never."
         + default(T.preview_every))]
InitFrom = Annotated[Optional[str], typer.Option(
    metavar="<checkpoint>",
    help="Start a new run from another run's weights and model settings (any backend, any "
         "device) on this run's corpus: characters it lacks get new rows, the others keep "
         "theirs.")]
Prefixes = Annotated[Optional[list[str]], typer.Option(
    "--prefix", metavar="<text>",
    help="A prefix to continue; repeat the option for several.")]
TrainPrefixes = Annotated[Optional[list[str]], typer.Option(
    "--prefix", metavar="<text>",
    help="A prefix for the previews (--preview-every); repeat the option for several."
         + default(T.prefix))]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Start over in an --out folder that already holds a run.")]
Resume = Annotated[bool, typer.Option(
    "--resume", help="Continue the run in --out from its last.pt up to --epochs; settings "
                     "given again must equal the run's.")]


# --- sample -------------------------------------------------------------------------------------

CHECKPOINT = Path("checkpoints/best.pt")
SampleConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", help="A TOML preset whose [sample] table sets these options (see "
                     "configs/song.toml); options given here win.")]
Checkpoint = Annotated[Path, typer.Option(help="The checkpoint to sample from.")]
Length = Annotated[Optional[int], typer.Option(
    help="Characters to generate after each prefix, without --lines." + default(S.length))]
Greedy = Annotated[Optional[bool], typer.Option(
    "--greedy/--no-greedy", help="Always take the most likely character (the book's way)."
    + flag_default("greedy", S.greedy))]
Temperature = Annotated[Optional[float], typer.Option(
    help="Divide the logits by this; below 1 is safer, above 1 wilder."
    + default(S.temperature))]
TopK = Annotated[Optional[int], typer.Option(
    help="Draw only from the K most likely characters.")]
TopP = Annotated[Optional[float], typer.Option(
    help="Draw only from the smallest set of characters whose probability reaches P.")]
NumSamples = Annotated[Optional[int], typer.Option(
    help="Continuations (or songs) per prefix, drawn together as one batch."
    + default(S.num_samples))]
SampleSeed = Annotated[Optional[int], typer.Option(
    help="Random seed; the same seed gives the same text.")]
Lines = Annotated[Optional[int], typer.Option(
    help="Write a song of exactly N lines (a prefix's line counts as the first).")]
LineLength = Annotated[Optional[str], typer.Option(
    metavar="<7|5-9|7,7,5,7>",
    help="Characters per line, spaces apart: a number, a range or a pattern repeated over the "
         "lines.")]
Rhyme = Annotated[Optional[str], typer.Option(
    metavar="<scheme>",
    help="Which lines rhyme, repeated over the lines: AABB, ABAB, XAXA (X: free).")]
RhymeWith = Annotated[Optional[str], typer.Option(
    metavar="<character>", help="Give the A lines the rhyme group of this character.")]
Acrostic = Annotated[Optional[str], typer.Option(
    metavar="<text>", help="Start line i with character i (藏头); sets the number of lines.")]
MaxCopy = Annotated[Optional[int], typer.Option(
    metavar="<N>",
    help="Never write a run of N or more characters, within a line, that the corpus holds "
         "(0: allow copies, which a terminal then marks)."
         + default(f"{DEFAULT_RUN}, when the checkpoint holds its corpus"))]
Candidates = Annotated[Optional[int], typer.Option(
    help="Draw K candidates for each line and keep the best that fits the form."
    + default(S.candidates))]
RepetitionPenalty = Annotated[Optional[float], typer.Option(
    help="Above 1, characters already in the text become less likely (CTRL's penalty; text "
         "drawn a line at a time, not with --candidates 1)."
    + default(f"{REPETITION_PENALTY}; none with --candidates 1"))]
StartTemperature = Annotated[Optional[float], typer.Option(
    help="Songs: the temperature of each line's first character (above --temperature: songs "
         "that differ more, their lines as fluent)." + default("the --temperature"))]
Rarity = Annotated[Optional[float], typer.Option(
    help="Songs: add this times a candidate line's mean surprisal in the corpus "
         "(-log of each character's frequency) to its score, so that less common, less generic "
         "lines win (MMI reranking; 0: off)." + default(S.rarity))]
Keywords = Annotated[Optional[str], typer.Option(
    metavar="<words>",
    help="Songs: words parted by commas (月光,离别), each put once in the song, on a line and "
         "at a place the model finds likely for it.")]
Words = Annotated[Optional[float], typer.Option(
    help="Songs: add this times the share of a candidate line's Han characters that lie in "
         "words of a general dictionary (CC-CEDICT) to its score, so that lines made of words "
         "win (0: off)." + default(S.words))]
Ending = Annotated[Optional[float], typer.Option(
    help="Songs: add this times the log-probability the model gives a candidate line's end "
         "where it ends (its newline, unmasked) to its score, so that lines that end where the "
         "model would end them win over lines cut to fit the form (0: off)."
         + default(S.ending))]
UseCounts = Annotated[Optional[bool], typer.Option(
    "--counts/--no-counts",
    help="Mix the training text's n-gram counts with the LSTM as validation did, when the "
         "checkpoint holds them." + flag_default("counts", S.counts))]
SampleBackend = Annotated[Optional[str], typer.Option(
    metavar=BACKEND,
    help="Run the checkpoint on this backend instead of the one it was trained with.")]
SampleDevice = Annotated[str, typer.Option(metavar=DEVICE, help="Where to run.")]
Unknown = Annotated[Literal["error", "skip"], typer.Option(
    help="Prefix characters outside the vocabulary: stop with an error, or skip them.")]


# --- serve --------------------------------------------------------------------------------------

Host = Annotated[str, typer.Option(
    metavar="<address>", help="The address to listen on; 127.0.0.1 keeps the page on this "
                              "machine, 0.0.0.0 opens it to the network.")]
Port = Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")]
