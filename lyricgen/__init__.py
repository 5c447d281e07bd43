"""lyricgen: a character-level LSTM lyrics generator with two interchangeable backends."""

__version__ = "0.1.0"
