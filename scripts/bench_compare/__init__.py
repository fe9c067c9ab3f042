"""Parts of scripts/bench-compare: shared helpers (common), the five peers' installs and
configurations (peers), and the BENCHMARKS.md writer (report)."""
