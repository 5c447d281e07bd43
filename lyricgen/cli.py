"""The `lyricgen` command line: it parses options and calls the commands (lyricgen/commands/).
User errors end as one line on stderr and an exit code (2 for usage, 1 for the rest), never a
traceback (unless --debug or LYRICGEN_DEBUG=1)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from lyricgen import __version__
from lyricgen.cli_options import (COMPARE_OUT, Data, DropLines, JsonFlag, MaxChars, Newlines,
                                  Prefixes, Script, TidySpaces, ValFraction)
from lyricgen.cli_options import (CHECKPOINT, Acrostic, Candidates, Checkpoint, Ending, Greedy,
                                  Keywords, Length, LineLength, Lines, MaxCopy, NumSamples,
                                  Rarity, RepetitionPenalty, Rhyme, RhymeWith, SampleBackend,
                                  SampleConfigFile, SampleDevice, SampleSeed, StartTemperature,
                                  Temperature, TopK, TopP, Unknown, UseCounts, Words)
from lyricgen.cli_options import Host, Port
from lyricgen.cli_shared import COMPARE, TRAIN, options
from lyricgen.errors import LyricgenError, is_terminal, one_line

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # older typer runs on click itself
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError


class LyricgenGroup(TyperGroup):
    """Click's entry point (`main`, which the console script and CliRunner both call), run with
    click's own error printing off so that every user error becomes one line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get("LYRICGEN_DEBUG") == "1"
        try:
            code = super().main(args=argv, prog_name=prog_name or "lyricgen",
                                complete_var=complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as e:  # `lyricgen` or `lyricgen data` alone: the help
            typer.echo(e.format_message())
            code = 0
        except UsageError as e:
            where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            code = fail(f"{e.format_message()}{where}", 2)
        except ClickException as e:
            code = fail(e.format_message(), e.exit_code)
        except LyricgenError as e:
            if debug:
                raise
            code = fail(str(e), e.exit_code)
        except OSError as e:  # the system said no (disk full, no permission, ...): not a bug
            if debug:
                raise
            code = fail(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e), 1)
        sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int) -> int:
    """The error line, on stderr. Under torchrun a usage error (exit code 2) is every
    process's alike, so only rank 0 says it; any other error each process says, naming it."""
    rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") != "1" else "0"
    if rank == "0":
        typer.echo(f"error: {one_line(message)}", err=True)
    elif code != 2:
        typer.echo(f"error (rank {rank}): {one_line(message)}", err=True)
    return code


# Plain (click's) help, not rich's: flags show no `<bool>`, and `[default: x]` written in a help
# text stays as written (rich would read it as markup and drop it).
app = typer.Typer(cls=LyricgenGroup, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False, rich_markup_mode=None,
                  help="Train LSTM character models on lyrics and sample new lyrics from them.")
data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Fetch a dataset or describe a corpus.")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lyricgen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors "
                                        "(also LYRICGEN_DEBUG=1).")] = False,
) -> None:
    """lyricgen: character-level LSTM lyrics generator."""


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The options actually given on the command line (the rest come from config/defaults)."""
    return {k: v for k, v in values.items() if v is not None}


# --- commands -----------------------------------------------------------------------------------

@app.command()
@options(TRAIN)
def train(config: Optional[Path], resume: bool, overwrite: bool, **given: Any) -> None:
    """Train a model; checkpoints and metrics.jsonl go to --out. Ctrl-C (or SIGTERM) stops
    at the next batch with last.pt saved, as --time-limit does (exit code 130, or 143)."""
    from lyricgen import tables
    from lyricgen.commands import train as command

    result = command.train(str(config) if config else None, _given(given), resume=resume,
                           overwrite=overwrite, log=typer.echo,
                           progress_bar=is_terminal(sys.stderr))
    if result.reported:  # (not in the other processes of a run under torchrun)
        tables.print_training_summary(result)
    if result.exit_code:  # stopped by a signal: a clean stop, with the shell's exit code
        raise typer.Exit(result.exit_code)


@app.command()
@options(COMPARE)
def compare(config: Optional[Path], overwrite: bool, **given: Any) -> None:
    """Train both backends (scratch and builtin) on the same data, seed, initial weights and
    batches, and report speed, perplexity curves and numerical agreement side by side in a
    table and in OUT/compare.json, compare.csv and compare.png (--time-limit is shared, half
    per backend)."""
    from lyricgen import tables
    from lyricgen.commands import compare as command

    result = command.compare(str(config) if config else None,
                             {"out": COMPARE_OUT, **_given(given)}, overwrite=overwrite,
                             log=typer.echo, progress_bar=is_terminal(sys.stderr))
    tables.print_comparison(result)


@app.command()
def sample(
    prefix: Prefixes = None, config: SampleConfigFile = None, checkpoint: Checkpoint = CHECKPOINT,
    length: Length = None, greedy: Greedy = None, temperature: Temperature = None,
    top_k: TopK = None, top_p: TopP = None, candidates: Candidates = None, words: Words = None,
    ending: Ending = None, max_copy: MaxCopy = None, num_samples: NumSamples = None,
    seed: SampleSeed = None, lines: Lines = None, line_length: LineLength = None,
    rhyme: Rhyme = None, rhyme_with: RhymeWith = None, acrostic: Acrostic = None,
    keywords: Keywords = None, repetition_penalty: RepetitionPenalty = None,
    start_temperature: StartTemperature = None, rarity: Rarity = None, counts: UseCounts = None,
    backend: SampleBackend = None, device: SampleDevice = "auto", unknown: Unknown = "error",
    as_json: JsonFlag = False,
) -> None:
    """Write new lyrics that continue each --prefix: lines of free text, or with --lines or
    --acrostic a song in a form (line lengths, rhyme, keywords), none copying the corpus."""
    from lyricgen.commands import sample as command

    cfg = command.settings(str(config) if config else None, _given(
        {k: v for k, v in locals().items() if k in command.SETTINGS}))
    if sys.stdout is None:  # started with stdout closed
        raise LyricgenError("standard output is closed: there is nowhere to write the lyrics")
    stream = not as_json and cfg.num_samples == 1  # to terminals and pipes as it is written
    try:
        results = command.sample(checkpoint, prefix or [""], cfg, backend=backend,
                                 device=device, unknown=unknown, mark_copies=is_terminal(sys.stdout),
                                 warn=lambda m: typer.echo(f"warning: {m}", err=True),
                                 stream=_stream_to_stdout if stream else None)
    except BrokenPipeError:  # the reader has gone (`| head`): stop writing, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if as_json:
        typer.echo(json.dumps(results, ensure_ascii=False, indent=2))
    elif not stream:
        typer.echo("\n\n".join(r["prefix_used"] + r["text"] for r in results))


def _stream_to_stdout(text: str, end: bool = False) -> None:
    sys.stdout.write(text + ("\n" if end else ""))
    sys.stdout.flush()


@app.command()
def serve(checkpoint: Checkpoint = CHECKPOINT, host: Host = "127.0.0.1", port: Port = 8000
          ) -> None:
    """Start a local web page to write songs with: write a song in a form, lock the lines to
    keep, redraw the others, pick among each line's candidates (needs the [serve] extra).
    Ctrl-C stops it."""
    from lyricgen.commands import serve as command

    command.serve(checkpoint, host, port, log=typer.echo,
                  warn=lambda m: typer.echo(f"warning: {m}", err=True))


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="The dataset to download.")] = "jaychou",
) -> None:
    """Download a registered dataset into the cache folder (LYRICGEN_DATA_DIR, default data/),
    verified against its sha256."""
    from lyricgen.commands import data as command

    typer.echo(command.fetch(name))


@data_app.command("info")
def data_info(
    data: Data = None, max_chars: MaxChars = None, newlines: Newlines = None,
    val_fraction: ValFraction = None, script: Script = None, tidy_spaces: TidySpaces = None,
    drop_lines: DropLines = None, as_json: JsonFlag = False,
) -> None:
    """Describe a corpus: characters, distinct characters, lines, train/val split, most
    common characters."""
    options = _given({k: v for k, v in locals().items() if k != "as_json"})
    from lyricgen import tables
    from lyricgen.commands import data as command

    info = command.info(options)
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
    else:
        tables.print_data_info(info)


def main() -> None:
    app()
