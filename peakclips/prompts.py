"""Prompt templates (files under prompts/, named `name.vN.jinja`) and the replies they ask for.

Templates are data: versioned by file name, hashed, rendered by one function with strict
variables (a missing or an unexpected variable is an error), and every row records the ids
and hashes of the prompts that made it. Each reply has a pydantic model; its JSON schema is
sent as structured output with array lengths pinned, and every reply is validated with the
model whatever the server claims.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PROMPT_NAMES = ["system", "scene_caption", "chapters", "queries", "relevance", "reply_schema"]


@dataclass(frozen=True)
class Prompt:
    id: str  # e.g. "relevance.v1"
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_prompts(folder: str | Path, versions: dict[str, int] | None = None,
                 names: list[str] = PROMPT_NAMES) -> dict[str, Prompt]:
    """Load the newest version of each prompt in `names` (or the pinned `versions`) from `folder`."""
    folder = Path(folder)
    prompts = {}
    for name in names:
        found = sorted(
            folder.glob(f"{name}.v*.jinja"), key=lambda p: int(p.name.split(".v")[1].split(".")[0])
        )
        if versions and name in versions:
            found = [p for p in found if p.name == f"{name}.v{versions[name]}.jinja"]
        if not found:
            raise FileNotFoundError(f"no prompt template {name}.vN.jinja in {folder}")
        path = found[-1]
        prompts[name] = Prompt(path.name.removesuffix(".jinja"), path.read_text())
    return prompts


def render(prompt: Prompt, **variables) -> str:
    """Render with exactly the template's variables: missing or unexpected ones raise."""
    template, declared = _compile(prompt.text)
    unexpected = set(variables) - declared
    if unexpected:
        raise TypeError(f"{prompt.id}: unexpected variables {sorted(unexpected)}")
    return template.render(**variables).strip() + "\n"


@functools.lru_cache(maxsize=64)
def _compile(text: str):
    """Parse a template once per worker (an actor renders thousands of prompts)."""
    import jinja2
    from jinja2 import meta

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                             autoescape=False)
    return env.from_string(text), frozenset(meta.find_undeclared_variables(env.parse(text)))


_DATA_TAG = re.compile(r"<\s*/?\s*data\s*>", re.IGNORECASE)


def data_text(text: str | None, limit: int) -> str:
    """Text that goes between <data> tags (manifest titles and queries, model captions):
    without anything that reads as our delimiter (any case or spacing), and cut to `limit`
    characters, so it cannot close the data block and talk to the model as instructions."""
    if not text:
        return ""
    return _DATA_TAG.sub(" ", text).strip()[:limit]


# --- replies ---------------------------------------------------------------------------------


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaptionReply(_Reply):
    caption: str = Field(min_length=1, max_length=1000)


class ChapterItem(_Reply):
    first_scene: int = Field(ge=0)
    """The chapter runs from this scene to the scene before the next chapter's first scene."""
    caption: str = Field(min_length=1, max_length=1000)


class ChaptersReply(_Reply):
    chapters: list[ChapterItem] = Field(min_length=1)
    summary: str = Field(min_length=1, max_length=2000)


class QueriesReply(_Reply):
    queries: list[str] = Field(min_length=1)


class SceneScoreItem(_Reply):
    score: int = Field(ge=1, le=5)
    reason: str = Field(min_length=1, max_length=500)


class RelevanceReply(_Reply):
    scores: list[SceneScoreItem]
    """One entry per scene listed in the prompt, in the listed order (length pinned)."""


def reply_schema(model: type[BaseModel], pin: dict[str, int] | None = None,
                 item_max: dict[str, int] | None = None, max_items: dict[str, int] | None = None) -> dict:
    """The JSON schema sent as `response_format`, with array lengths pinned where known
    (`pin={"scores": 12}`) or bounded (`max_items={"chapters": 12}`) and integer bounds of array
    items set (`item_max={"chapters.first_scene": 11}`), so servers with constrained decoding
    enforce them (a grammar without a bound lets a small model add items until its context is full)."""
    schema = copy.deepcopy(model.model_json_schema())
    for field, n in (pin or {}).items():
        schema["properties"][field]["minItems"] = n
        schema["properties"][field]["maxItems"] = n
    for field, n in (max_items or {}).items():
        schema["properties"][field]["maxItems"] = n
    for dotted, n in (item_max or {}).items():
        field, sub = dotted.split(".")
        ref = schema["properties"][field]["items"]["$ref"].rsplit("/", 1)[-1]
        schema["$defs"][ref]["properties"][sub]["maximum"] = n
    return schema
