"""SeeingServer: the local OpenAI-compatible test server (tests/llm_server.py) given eyes.

It decodes the images it is sent and looks for the needle of `peakclips make-needle` with the
benchmark's own pixel test (`peakclips.eval.needle.find_needle`), so it knows only what the frames
show. It answers:
  - the eval answerer (a request without `response_format`, ending with lmms-eval's instruction):
    the letter of the option that names the needle's colour when a frame shows the needle, else
    a guess seeded by (seed, the question and its options): right about one time in four;
  - the annotator's prompts (`response_format` json_schema named after the prompt): a scene
    caption says whether the scene's frames show the needle and its colour; relevance gives 5 to
    scenes whose caption mentions the needle and 1 to the others; chapters and queries are left
    to the server's schema faker.
Loopback only, like the server it extends; a fixture starts it and stops it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from typing import Any

import numpy as np

from tests.llm_server import FakeLLMServer

INSTRUCTION = "Answer with the option's letter from the given choices directly."
NEEDLE_WORD = "checkered"  # in the captions of needle scenes, and what relevance looks for
SCENE_LINE = re.compile(r"^\[(\d+)\] [\d.]+-[\d.]+ s: <data>(.*)</data>$", re.MULTILINE)
OPTION_LINE = re.compile(r"^([A-J])\. (.*)$", re.MULTILINE)


def _parts(body: dict) -> list[dict]:
    parts = []
    for m in body.get("messages", []):
        content = m.get("content")
        parts += [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    return parts


def seen_colours(body: dict) -> list[str]:
    """The needle colour each image of the request shows (images without the needle left out)."""
    from PIL import Image

    from peakclips.eval.needle import find_needle

    out = []
    for p in _parts(body):
        if p.get("type") == "image_url":
            data = base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
            colour = find_needle(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            if colour:
                out.append(colour)
    return out


def seeing_reply(body: dict, seed: int = 0) -> Any:
    fmt = body.get("response_format") or {}
    name = (fmt.get("json_schema") or {}).get("name", "")
    text = "\n".join(p.get("text", "") for p in _parts(body) if p.get("type") == "text")
    if name.startswith("scene_caption"):
        colours = seen_colours(body)
        if colours:
            return {"caption": f"A card with a {NEEDLE_WORD} magenta-and-green frame around a "
                               f"{max(set(colours), key=colours.count)} square drifts over a textured background."}
        return {"caption": "A textured, colourful background with a disc moving across it."}
    if name.startswith("relevance"):
        scenes = SCENE_LINE.findall(text)
        return {"scores": [{"score": 5 if NEEDLE_WORD in caption else 1,
                            "reason": "The scene shows the card." if NEEDLE_WORD in caption else "No card here."}
                           for _, caption in scenes]}
    if not fmt and INSTRUCTION in text:
        block = text[text.rindex("Question:"):]
        options = OPTION_LINE.findall(block)
        colours = seen_colours(body)
        if colours:
            colour = max(set(colours), key=colours.count)
            return next((letter for letter, option in options if option.strip() == colour), "I cannot tell.")
        guess = int(hashlib.sha256(f"{seed}|{block}".encode()).hexdigest(), 16) % len(options)
        return options[guess][0]
    return None  # chapters, queries: the schema faker's reply


class SeeingServer(FakeLLMServer):
    def __init__(self, *, seed: int = 0, **kwargs):
        super().__init__(reply_fn=lambda body: seeing_reply(body, seed), model="seeing-vlm", **kwargs)
