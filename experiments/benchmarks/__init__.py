"""Benchmarks, each run as `python -m experiments.benchmarks.<name>`: synbio (SynBio rendering), mixture (the mixture
stream), train (the train step on synthetic batches). `make bench` runs synbio and mixture."""
