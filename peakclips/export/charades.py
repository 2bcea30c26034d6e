"""Charades-STA text: `vid start end##query`, one line per (kept query, window).

`vid` is the sample key; times in seconds with two decimals; a query with several highlight
windows (touching clips merged) gives several lines, as Charades-STA lists one moment per line.
`##` and line breaks inside a query become spaces so every line parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from peakclips.export import windows


def lines(samples: Iterable[dict]) -> Iterator[str]:
    for sample in samples:
        for q in sample["queries"]:
            text = re.sub(r"\s+", " ", q["query"].replace("##", " ")).strip()
            for start, end in windows(q["highlights"]):
                yield f"{sample['key']} {start:.2f} {end:.2f}##{text}"
