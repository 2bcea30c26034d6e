"""peakclips-train: the K-frames curriculum (SFT1, SFT2, GRPO) over PeakClips shards.

Reads shards only; never imports the pipeline stages. `clip2frame` is shared with the CLI.
"""
