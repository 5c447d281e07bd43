"""Corpora: files on disk, the registered datasets, cleaning, the vocabulary and batches."""
