"""The commands (train, compare, sample, data) between the command line, which only parses,
and the library: each takes settings and returns what the command line prints."""
