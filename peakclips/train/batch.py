"""From examples (prompt text + decoded frames + their times) to Qwen2.5-VL model inputs.

Every stage, the reward's answerer and `peakclips select` build their inputs here, so the
selector sees the same chat layout in training and in use: a user turn holding the video (the
candidate frames as one Qwen2.5-VL video, whose temporal positions follow the real frame spacing
through `second_per_grid_ts`) followed by the prompt text that lists the frame times.

The SFT collator is used by TRL's SFTTrainer in place of its image-only
`DataCollatorForVisionLanguageModeling`; it masks everything but the answer tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100
END = "<|im_end|>"


def video_metadata(times: list[float], duration_s: float):
    """Metadata telling the processor the candidates' sampling rate (frames are evenly spaced)."""
    from transformers.video_utils import VideoMetadata

    n = len(times)
    return VideoMetadata(total_num_frames=n, fps=n / max(duration_s, 1e-3), frames_indices=list(range(n)),
                         duration=duration_s)


def chat_text(processor, prompt: str, target: str | None = None) -> str:
    """The rendered chat: user turn (video + prompt), assistant cue, and the target when training."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text if target is None else text + target + END


def encode(processor, examples: list[dict], *, with_targets: bool = False, padding_side: str = "right"):
    """Tokenized batch with `pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`, `mm_token_type_ids`;
    with targets, `labels` are the answer tokens (and the closing <|im_end|>) and -100 elsewhere."""
    texts = [chat_text(processor, ex["prompt"], ex["target"] if with_targets else None) for ex in examples]
    batch = processor(text=texts, videos=[ex["frames"] for ex in examples],
                      video_metadata=[video_metadata(ex["times"], ex["duration"]) for ex in examples],
                      padding=True, padding_side=padding_side, return_tensors="pt")
    if with_targets:
        batch["labels"] = answer_labels(processor.tokenizer, batch, [ex["target"] for ex in examples])
    return batch


def answer_labels(tokenizer, batch, targets: list[str]) -> torch.Tensor:
    """Labels that keep only each row's trailing answer tokens (right-padded rows).

    The answer follows "assistant\\n" and Qwen's pre-tokenizer splits at newlines, so the answer
    tokenizes the same alone as in context; the check below guards that assumption."""
    labels = torch.full_like(batch["input_ids"], IGNORE)
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    for i, (target, length) in enumerate(zip(targets, lengths)):
        ids = tokenizer(target + END, add_special_tokens=False)["input_ids"]
        row = batch["input_ids"][i, length - len(ids):length]
        if row.tolist() != ids:
            raise ValueError(f"answer tokens not found at the end of example {i}: {target[:60]!r}")
        labels[i, length - len(ids):length] = row
    return labels


@dataclass
class SFTCollator:
    """Examples -> a training batch (decoded frames in, tensors out); runs in DataLoader workers."""

    processor: object

    def __call__(self, examples: list[dict]) -> dict:
        return dict(encode(self.processor, examples, with_targets=True))


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
