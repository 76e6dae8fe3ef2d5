"""Benchmarks: Tally against its peers on the same machine, in the same run (`python -m bench`)."""
