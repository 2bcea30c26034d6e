"""The answerer: any OpenAI-compatible VLM answers each question from the k selected frames.

The request follows lmms-eval, through which BOLT, AKS and K-frames report their numbers: one user
message with the frames as `image_url` parts in time order, each after a text part with its time
("12.3 s"), then the question, the options lettered "A. ...", and lmms-eval's instruction "Answer
with the option's letter from the given choices directly." (prompts/eval/). Greedy (temperature 0),
at most 16 new tokens, as lmms-eval generates. The benchmark's text goes in as the benchmarks
print it (no <data> delimiters): a standard prompt is what makes numbers comparable.

A reply counts only when it starts with one option letter, alone or followed by ".", ")", ":"
or a space (`parse_letter`): "B", "B.", "(B) a red car". Anything else is wrong, and the reply is
kept in the results as given.

What it shares with the annotator (peakclips/llm.py): the endpoint settings as an
`AnnotatorConfig` (`--vlm-base-url`, `--vlm-model`, the key in OPENAI_API_KEY), the key lookup,
the preflight, the error codes, and the SQLite `ResponseCache`, keyed by the model, the prompts
and the request's messages (images included), so a re-run, or two selectors that pick the same
frames, never send a request twice. The request itself is a plain chat completion through the
openai client (which retries with backoff), not the annotator's `LLMClient.ask`, which asks for
and validates JSON replies. A request that still fails is the item's error for that run and is
asked again by the next run.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor

from peakclips.config import AnnotatorConfig
from peakclips.eval.benchmarks import LETTERS, Item
from peakclips.pipeline import REPO_ROOT
from peakclips.prompts import load_prompts, render

MAX_TOKENS = 16
_LETTER = re.compile(r"\s*\(?([A-J])\)?(?=$|[\s.:)])")


def parse_letter(reply: str, num_options: int) -> int | None:
    """The option index a reply names, read strictly; None when it names none.

    >>> [parse_letter(r, 4) for r in ["B", " (c) ", "D. the car", "A:", "E", "Based on the frames, B", ""]]
    [1, None, 3, 0, None, None, None]
    """
    m = _LETTER.match(reply)
    if not m or LETTERS.index(m.group(1)) >= num_options:
        return None
    return LETTERS.index(m.group(1))


class Answerer:
    def __init__(self, cfg: AnnotatorConfig, image_size: int = 448, concurrency: int = 8):
        import openai

        from peakclips.llm import ResponseCache, api_key, base_url, default_cache_path

        self.cfg, self.image_size = cfg, image_size
        self.client = openai.OpenAI(base_url=base_url(cfg), api_key=api_key(cfg), timeout=cfg.timeout_s,
                                    max_retries=cfg.max_retries)
        self.cache = ResponseCache(cfg.cache or os.path.join(os.path.dirname(default_cache_path()), "vlm.sqlite"))
        self.prompts = load_prompts(REPO_ROOT / "prompts" / "eval", names=["frames", "answer"])
        self.prompt_id = "+".join(p.id for p in self.prompts.values())
        self.prompt_sha = hashlib.sha256("".join(p.sha256 for p in self.prompts.values()).encode()).hexdigest()
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vlm")

    def messages(self, item: Item, duration_s: float, times: list[float], jpegs: list[bytes]) -> list[dict]:
        from peakclips.stages.annotate import image_part

        parts = [{"type": "text", "text": render(self.prompts["frames"], num_frames=len(times), duration_s=duration_s)}]
        for t, jpeg in zip(times, jpegs):
            parts += [{"type": "text", "text": f"{t:.1f} s"}, image_part(jpeg, self.image_size)]
        options = [{"letter": LETTERS[i], "text": o} for i, o in enumerate(item.options)]
        parts.append({"type": "text", "text": render(self.prompts["answer"], question=item.question, options=options)})
        return [{"role": "user", "content": parts}]

    def ask(self, messages: list[dict]) -> str:
        """The model's reply (from the cache when asked before); VideoError when the request fails."""
        import openai

        from peakclips.llm import ResponseCache, request_error

        key = ResponseCache.key(self.cfg.model, self.prompt_id, self.prompt_sha, messages, {})
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        try:
            resp = self.client.chat.completions.create(model=self.cfg.model, messages=messages, temperature=0,
                                                       max_tokens=MAX_TOKENS)
        except openai.APIError as e:
            raise request_error(e, self.prompt_id, self.cfg, self.cfg.response_format) from None
        reply = (resp.choices[0].message.content if resp.choices else None) or ""
        self.cache.put(key, reply)
        return reply

    def answer(self, item: Item, duration_s: float, selections: list[list[float]]) -> list[dict | Exception]:
        """For each selection (timestamps), {reply, prediction, correct} or the error it met.
        The item's video is decoded once for all of them."""
        from peakclips.commands.frames import frames_from_video  # the frame shown at each time
        from peakclips.video import encode_jpeg

        wanted = sorted({t for times in selections for t in times})
        jpeg_at = dict(zip(wanted, (encode_jpeg(img) for img in frames_from_video(item.video, wanted))))

        def one(times: list[float]) -> dict:
            reply = self.ask(self.messages(item, duration_s, times, [jpeg_at[t] for t in times]))
            prediction = parse_letter(reply, len(item.options))
            return {"reply": reply, "prediction": prediction,
                    "correct": None if item.answer is None else prediction == item.answer}

        futures = [self.pool.submit(one, times) for times in selections]
        out: list[dict | Exception] = []
        for f in futures:
            try:
                out.append(f.result())
            except Exception as e:  # noqa: BLE001 - the caller records VideoErrors; others re-raise there
                out.append(e)
        return out
