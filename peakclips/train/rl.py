"""rl: GRPO from the sft2 model on multiple-choice samples, with video rollouts.

Why not TRL's GRPOTrainer as shipped: its multimodal path is written for images. It pulls
`image` parts out of the prompts (`_tokenize_prompts`), forwards only image tensors by name
(`pixel_values`, `image_grid_thw`, ...) into `_get_per_token_logps_and_entropies`, and copies
only those into the batch that `_generate_and_score_completions` hands to the loss. The video
tensors Qwen2.5-VL needs (`pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`) would be
dropped or rejected, and patching those private methods would tie us to TRL internals that
change every release. So the custom part is this small `transformers.Trainer` subclass: per
micro-batch it rolls out `num_generations` answers per prompt, scores them with the reward
functions (plain functions in TRL's reward signature, rewards.py), and takes one GRPO step.
Log-probabilities are computed only at the completion positions (`logits_to_keep`, TRL's
`selective_log_softmax`); the loop, checkpoints, resume and logging are transformers'.

Loss (one update per rollout batch, so the importance ratio is 1 and PPO clipping never binds):
    A_i   = (r_i - mean(r_group)) / (std(r_group) + 1e-4)
    loss  = mean_i  1/|o_i| sum_t [ -exp(logp - sg(logp)) * A_i + beta * KL_t ]
    KL_t  = exp(ref - logp) - (ref - logp) - 1        (k3 estimator, against the starting policy)
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict

import torch
from transformers import Trainer, TrainingArguments
from trl.trainer.utils import selective_log_softmax

from peakclips.train import model as models
from peakclips.train import rewards, runs, tasks
from peakclips.train.batch import encode, to_device
from peakclips.train.config import RLConfig, TrainConfig
from peakclips.train.resume import StreamingData

log = logging.getLogger(__name__)


def collate_examples(examples: list[dict]) -> dict:
    """RL batches stay examples: prompts are expanded per rollout inside the step."""
    return {"examples": examples}


class VideoGRPOTrainer(StreamingData, Trainer):
    def __init__(self, *, ref_model, processor, reward_funcs: dict, rl: RLConfig, **kwargs):
        super().__init__(processing_class=processor, data_collator=collate_examples, **kwargs)
        self.ref_model, self.processor, self.rl = ref_model, processor, rl
        self.reward_funcs = {name: f for name, f in reward_funcs.items() if rl.reward_weights.get(name, 0)}
        self.weights = torch.tensor([rl.reward_weights[n] for n in self.reward_funcs])
        self._metrics: dict[str, list[float]] = defaultdict(list)
        tok = processor.tokenizer
        self.stop_ids = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]

    @torch.no_grad()
    def rollout(self, model, prompt) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled completions (right-padded ids) and their mask (up to and including the stop token)."""
        unwrapped = self.accelerator.unwrap_model(model)
        was_training = unwrapped.training
        unwrapped.eval()
        out = unwrapped.generate(**prompt, do_sample=True, temperature=self.rl.temperature, top_p=self.rl.top_p,
                                 max_new_tokens=self.rl.max_completion_tokens, eos_token_id=self.stop_ids,
                                 pad_token_id=self.processor.tokenizer.pad_token_id)
        unwrapped.train(was_training)
        ids = out[:, prompt["input_ids"].size(1):]
        is_stop = torch.isin(ids, torch.tensor(self.stop_ids, device=ids.device))
        first = torch.where(is_stop.any(1), is_stop.int().argmax(1), ids.size(1))
        mask = (torch.arange(ids.size(1), device=ids.device)[None] <= first[:, None]).long()
        return ids, mask

    def score(self, group: list[dict], texts: list[str]) -> torch.Tensor:
        """(rollouts, reward functions) with NaN where a function does not apply."""
        columns = {k: [ex.get(k) for ex in group] for k in ("duration", "qa", "highlights", "frames", "times")}
        table = []
        for fn in self.reward_funcs.values():
            values = fn([ex["prompt"] for ex in group], texts, **columns)
            table.append([float("nan") if v is None else float(v) for v in values])
        return torch.tensor(table).T

    def token_logps(self, model, full: dict, ids: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of the completion tokens `ids` (at the end of `full`), temperature-scaled
        like the sampling; logits only for those positions (`logits_to_keep`), never the whole sequence."""
        logits = model(**full, logits_to_keep=ids.size(1) + 1).logits[:, :-1]
        return selective_log_softmax(logits.float(), ids, temperature=self.rl.temperature)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        g = self.rl.num_generations
        group = [ex for ex in inputs["examples"] for _ in range(g)]
        prompt = to_device(encode(self.processor, group, padding_side="left"), self.args.device)
        ids, mask = self.rollout(model, prompt)
        texts = self.processor.tokenizer.batch_decode(ids * mask + (1 - mask) * self.stop_ids[1],
                                                      skip_special_tokens=True)
        scores = self.score(group, texts)
        total = torch.nansum(scores * self.weights, dim=1)
        grouped = total.view(-1, g)
        adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)

        full = dict(prompt, input_ids=torch.cat([prompt["input_ids"], ids], 1),
                    attention_mask=torch.cat([prompt["attention_mask"], mask], 1),
                    mm_token_type_ids=torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(ids)], 1))
        logp = self.token_logps(model, full, ids)
        with torch.no_grad():
            ref = self.token_logps(self.ref_model, full, ids)
        delta = ref - logp
        kl = torch.exp(delta) - delta - 1
        adv = adv.to(logp.device)
        per_token = -torch.exp(logp - logp.detach()) * adv[:, None] + self.rl.beta * kl
        lengths = mask.sum(1).clamp(min=1)
        loss = ((per_token * mask).sum(1) / lengths).mean()

        m = self._metrics
        m["reward"].append(total.mean().item())
        m["reward_std"].append(grouped.std(1).mean().item())
        for j, name in enumerate(self.reward_funcs):
            col = scores[:, j]
            if not col.isnan().all():
                m[f"rewards/{name}"].append(col.nanmean().item())
        m["kl"].append(((kl * mask).sum() / mask.sum().clamp(min=1)).item())
        m["completion_length"].append(mask.sum(1).float().mean().item())
        failed = [tasks.parse_clips(t, ex["duration"])[1] is not None for t, ex in zip(texts, group)]
        m["parse_failure_rate"].append(sum(failed) / len(failed))
        return loss

    def log(self, logs: dict, start_time: float | None = None) -> None:
        logs.update({k: sum(v) / len(v) for k, v in self._metrics.items() if v})
        self._metrics.clear()
        super().log(logs, start_time)


def reward_functions(cfg: TrainConfig) -> dict:
    funcs = {"format": rewards.format_reward, "temporal_iou": rewards.temporal_iou_reward}
    if cfg.rl.reward_weights.get("answer_margin", 0):
        answerer, processor = models.load_answerer(cfg.rl.answerer, cfg.run.seed)
        if torch.cuda.is_available():
            answerer.to("cuda")
        funcs["answer_margin"] = rewards.AnswerMarginReward(answerer, processor, cfg.rl.k, cfg.rl.k_mode, cfg.rl.tau)
    return funcs


def run_rl(cfg: TrainConfig) -> str:
    """Train the rl stage; returns the folder of the final model."""
    if cfg.rl.reward_weights.get("answer_margin", 0) and not cfg.rl.answerer.tiny:
        models.check_available(cfg.rl.answerer.name_or_path, "rl.answerer.name_or_path")
    run = runs.start(cfg, "rl", tasks.rl_examples)
    policy = run.model
    ref = copy.deepcopy(policy).eval().requires_grad_(False)  # the starting policy, also on resume
    if run.lora is not None:
        from peft import get_peft_model

        policy = get_peft_model(policy, run.lora)
    args = TrainingArguments(**run.arguments())
    trainer = VideoGRPOTrainer(model=policy, args=args, ref_model=ref.to(args.device), processor=run.processor,
                               reward_funcs=reward_functions(run.cfg), rl=run.cfg.rl,
                               callbacks=run.callbacks(args.world_size))
    return run.train(trainer)
