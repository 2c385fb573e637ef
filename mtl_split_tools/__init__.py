"""Command-line tools: the `mtl-split` CLI, bags, replay evaluation, the launch runner
(benchmarks live in mtl_split_bench)."""
