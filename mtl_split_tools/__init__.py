"""Command-line tools: the `mtl-split` CLI, bag writing, replay evaluation, benchmarks."""
