"""`lyricgen` with float64 weights, for the distributed tests, whose figures must agree to
1e-12: torchrun starts this file as each of its processes (and the tests run it alone)."""

import sys

import torch

torch.set_default_dtype(torch.float64)

from lyricgen.cli import main  # noqa: E402 - after the dtype is set

sys.argv[0] = "lyricgen"
main()
