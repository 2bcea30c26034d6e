"""`peakclips eval`: keyframe selectors side by side on the same videos, questions and budgets.

    benchmarks.py   annotation files -> normalized items (needle jsonl, Video-MME, MLVU, LongVideoBench)
    needle.py       `peakclips make-needle`: a generated needle-in-a-haystack benchmark
    selectors/      one module per selector: (item, k) -> k sorted timestamps
    similarity.py   CLIP query-frame similarity over candidate frames (clip-topk, bolt, aks)
    vlm.py          an OpenAI-compatible VLM answers from the k frames (accuracy)
    harness.py      the command: runs every (selector, k, item) once, resumably
    report.py       metrics, results.json, results.md and the plot
    cli.py          the two subcommands' arguments (registered by peakclips/cli.py)

Reads videos and annotation files; never imported by the pipeline stages or the trainer.
"""


class EvalError(ValueError):
    """A usage or input error of `peakclips eval` / `make-needle`; the message says what to change."""
