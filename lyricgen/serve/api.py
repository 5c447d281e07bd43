"""The API's requests and answers, as pydantic models (FastAPI documents them in OpenAPI), and
the bounds that keep one request from holding the server: a song is a few dozen short lines."""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lyricgen.config import SampleConfig
from lyricgen.songs.form import Form

MAX_LINES = 64  # lines of a song, and locked lines
MAX_CANDIDATES = 64  # candidates drawn for each line
MAX_LINE_LENGTH = 60  # characters of a drawn line (--line-length's highest)
MAX_PREFIX = 200  # characters of the prefix
MAX_TEXT = 200  # characters of a line written by hand, and of the other text options
MAX_COPY = 32  # --max-copy: each value asked builds a copy index of the corpus

Line = Annotated[str, Field(max_length=MAX_TEXT)]  # a line of a song as it stands
OPTIONAL_TEXT = ("preset", "line_length", "rhyme", "rhyme_with", "acrostic", "keywords")


class SongBody(BaseModel):
    """A song in a form: `sample`'s options (unset ones from the preset, else sample's
    defaults). With `locked` lines it is a redraw: those lines stay as written and the others
    are drawn again around them, in order, rhyming with them."""
    model_config = ConfigDict(extra="forbid")

    preset: Optional[str] = Field(None, max_length=MAX_TEXT, description=(
        "A preset of configs/ with a [sample] table, by name (GET /api/info lists them)."))
    prefix: str = Field("", max_length=MAX_PREFIX, description=(
        "Text the song starts with: its first line, or the start of it."))
    lines: Optional[int] = Field(None, ge=1, le=MAX_LINES)
    line_length: Optional[str] = Field(None, max_length=MAX_TEXT, description="7, 5-9 or 7,7,5,7")
    rhyme: Optional[str] = Field(None, max_length=MAX_LINES, description="AABB, ABAB, XAXA...")
    rhyme_with: Optional[str] = Field(None, max_length=MAX_TEXT)
    acrostic: Optional[str] = Field(None, max_length=MAX_LINES)
    keywords: Optional[str] = Field(None, max_length=MAX_TEXT)
    temperature: Optional[float] = Field(None, description="Above 0; below 1 is safer.")
    candidates: Optional[int] = Field(None, ge=1, le=MAX_CANDIDATES)
    max_copy: Optional[int] = Field(None, ge=0, le=MAX_COPY,
                                    description="0: copies allowed; else at least 2.")
    seed: Optional[int] = Field(None, description="The same seed gives the same song.")
    locked: dict[int, str] = Field(default_factory=dict, max_length=MAX_LINES, description=(
        "Lines kept as written, by index from 0 (a locked line of the prefix replaces it)."))
    others: bool = Field(True, description="Send each line's other candidates, best first.")

    @field_validator(*OPTIONAL_TEXT, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # an empty field of the page's form means "not given", as an option left out does
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("locked")
    @classmethod
    def _short_lines(cls, locked: dict[int, str]) -> dict[int, str]:
        for i, text in locked.items():
            if len(text) > MAX_TEXT:
                raise ValueError(f"locked line {i + 1} is longer than {MAX_TEXT} characters")
        return locked


class CandidatesBody(SongBody):
    """The candidates of one line of a song: the line drawn again after the song above it
    (and rhyming with the lines of its letter), every other line kept."""
    song: list[Line] = Field(..., max_length=MAX_LINES, description="The song's lines, all of "
                            "them, as they stand now.")
    line: int = Field(..., ge=0, lt=MAX_LINES, description="The line, by index from 0.")



class DescribeBody(BaseModel):
    """Lines to describe (written by hand): each one's rhyme key and copied run."""
    model_config = ConfigDict(extra="forbid")
    lines: list[Line] = Field(..., max_length=MAX_LINES)


class Problem(BaseModel):
    """A request refused: the field at fault and what is wrong, in one line."""
    field: str
    message: str


class FieldError(Exception):
    """A request refused, on `field` (a SongBody field, or "form" for the whole)."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


FIELDS = set(CandidatesBody.model_fields)


def field_of(message: str) -> str:
    """The field a message of `sample`'s checks is about: the option it names first (`--lines
    must be from 1 to 1000` -> lines), a preset's file (-> preset), the prefix, else "form"."""
    option = re.search(r"--([a-z][a-z-]*)", message)
    if option and option.group(1).replace("-", "_") in FIELDS:
        return option.group(1).replace("-", "_")
    if re.search(r"\.toml \[sample\]", message):
        return "preset"
    for name in ("prefix", "locked"):
        if message.startswith(name):
            return name
    return "form"


def check_bounds(cfg: SampleConfig, form: Form) -> None:
    """The server's bounds, over what sample allows, on the settings a preset may set too."""
    if form.lines > MAX_LINES:
        raise FieldError("acrostic" if form.acrostic else "lines",
                         f"a song here has at most {MAX_LINES} lines")
    if cfg.candidates > MAX_CANDIDATES:
        raise FieldError("candidates", f"at most {MAX_CANDIDATES} candidates a line here")
    if max(high for _, high in form.lengths) > MAX_LINE_LENGTH:
        raise FieldError("line_length", f"lines here have at most {MAX_LINE_LENGTH} characters")
