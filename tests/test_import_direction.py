"""The direction of imports (docs/architecture.md, "Who imports whom"), checked on the source:
every `import` and `from ... import` in peakclips/, lazy ones inside functions included.

    stages    never import readers, the driver, the trainer or the commands
    readers   (of finished shards) never import stages, the driver or the trainer
    train/    meets the pipeline only through shards and shared helpers: no stages, driver,
              readers or commands
    shared    helpers (spans, frametimes, clip2frame, shards, schema, storage, ...) import none
              of the layers above them
    eval      (`peakclips eval`, make-needle) is imported by the CLI only
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "peakclips"

LAYERS = {
    "stages": ("peakclips.stages",),
    "driver": ("peakclips.pipeline", "peakclips.resume", "peakclips.cli", "peakclips.driver", "peakclips.faults",
               "peakclips.progress", "peakclips.raylogs"),
    "readers": ("peakclips.dataset", "peakclips.verify", "peakclips.stats", "peakclips.export", "peakclips.hub",
                "peakclips.report", "peakclips.annotator_eval", "peakclips.calibrate", "peakclips.commands.frames"),
    "train": ("peakclips.train",),
    "commands": ("peakclips.commands",),  # scenes (runs stages 1-3), select (runs a trained model)
    "eval": ("peakclips.eval",),  # beside the driver: runs the pipeline, reads shards, runs selectors
}
FORBIDDEN = {
    "stages": {"readers", "driver", "train", "commands", "eval"},
    "readers": {"stages", "driver", "train", "eval"},
    "train": {"stages", "driver", "readers", "commands", "eval"},
    "shared": {"stages", "driver", "readers", "train", "commands", "eval"},
}


def layer(module: str) -> str:
    for name, prefixes in LAYERS.items():  # readers before commands: commands.frames is a reader
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return "shared"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """peakclips modules `path` imports (`from peakclips import shards` counts as peakclips.shards)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("peakclips")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("peakclips"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                      or (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/") / "__init__.py").exists()}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_go_one_way(path):
    me = module_name(path)
    forbidden = FORBIDDEN.get(layer(me), set())
    wrong = sorted(f"{m} ({layer(m)})" for m in imports(path) if layer(m) in forbidden and m != "peakclips")
    assert wrong == [], f"{me} ({layer(me)}) imports {wrong}"


def test_the_check_sees_lazy_imports_and_every_layer():
    assert {layer(module_name(p)) for p in MODULES} == {*LAYERS, "shared"}
    clipscore = imports(PACKAGE / "stages" / "clipscore.py")
    assert "peakclips.clipmodel" in clipscore and layer("peakclips.clipmodel") == "shared"
    assert "peakclips.stages.annotate" in imports(PACKAGE / "pipeline.py")  # imported inside a function
    assert layer("peakclips.commands.frames") == "readers" and layer("peakclips.commands.scenes") == "commands"
