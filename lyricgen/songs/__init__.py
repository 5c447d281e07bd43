"""Text a line at a time: songs' forms, rhyme, keywords, candidates and their ranking."""
