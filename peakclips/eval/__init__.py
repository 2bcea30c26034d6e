"""`peakclips eval`: keyframe selectors side by side on the same videos, questions and budgets.

    benchmarks.py   annotation files -> normalized items (needle jsonl, Video-MME, MLVU, LongVideoBench)
    needle.py       `peakclips make-needle`: a generated needle-in-a-haystack benchmark
    selectors/      one module per selector: (item, k) -> k sorted timestamps
    similarity.py   CLIP query-frame similarity over candidate frames (clip-topk, bolt, aks)
    vlm.py          an OpenAI-compatible VLM answers from the k frames (accuracy)
    harness.py      the command: runs every (selector, k, item) once, resumably
    report.py       metrics, results.json, results.md and the plot
    arguments.py    the two subcommands' arguments (peakclips/cli.py runs them and prints)

It sits beside the driver: it runs the pipeline (the data engine as a selector), reads the shards,
runs trained selectors; only peakclips/cli.py imports it (tests/test_import_direction.py).
"""

from peakclips.errors import UserError


class EvalError(UserError):
    """A usage or input error of `peakclips eval` / `make-needle`; the message says what to change."""
