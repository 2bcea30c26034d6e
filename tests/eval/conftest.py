"""A small generated needle benchmark shared by the eval tests (seconds to make on 2 cores).

Twelve 24 s videos at 8 fps, 128x72, each with a 2 s needle: k uniform frames 24/k s apart find
the needle about 2k/24 of the time, and always from k = 12 on.
"""

from __future__ import annotations

import pytest

NEEDLE = {"videos": 12, "duration_s": 24.0, "seed": 3, "fps": 8, "size": (128, 72), "needle_s": 2.0}


@pytest.fixture(scope="session")
def needle_set(tmp_path_factory):
    from peakclips.eval.needle import make_needle

    out = tmp_path_factory.mktemp("needle")
    items = make_needle(out, log=lambda *_: None, **NEEDLE)
    return out, items
