"""AVUR-LLM's refinement stage (VUR): a causal LM rescores the first stage's N-best list, prompted with the clip's
run-length-compressed visual units.

The unit vocabulary is added to the LM's tokenizer as tokens ``<vu_0>`` ... ``<vu_{K-1}>``; the LM is adapted with
LoRA (`peft`) and its input embeddings train too (the new unit tokens start random). A hypothesis scores the sum of
its tokens' log-probabilities after the prompt; training is list-wise: a softmax over the N hypotheses' scores,
cross-entropy against the one with the lowest WER. At inference the best hypothesis maximises the LM score plus a
weighted first-pass score.

Whisper's decoder (``WhisperForCausalLM``, e.g. loaded from the offline Whisper tiny.en) serves as the LM too. It
was trained to cross-attend to audio; here it reads one frame of zeros instead, and every sequence starts with its
transcript prefix (``<|startoftranscript|><|notimestamps|>``). That makes it a plain English LM: on "The cat sat on
the mat and looked at the dog." it gives 4.4 nats a token, against 7.4 with the words shuffled, where the offline
MiniLM loaded as a decoder (its LM head untrained) gives 10.9 to both.
"""

from __future__ import annotations

import torch
from torch import nn

from .visual_units import run_length_compress

UNIT_TOKEN = "<vu_{}>"
PROMPT = "Visual units: {units}\nTranscript:"


def unit_tokens(num_units: int) -> list[str]:
    return [UNIT_TOKEN.format(index) for index in range(num_units)]


class VisualUnitRescorer(nn.Module):
    r"""
    Args:
        language_model: any Hugging Face causal LM (`AutoModelForCausalLM`): Qwen3, Llama, GPT-2, ..., or Whisper's
            decoder (`WhisperForCausalLM`, read as a text LM as the module docstring says).
        tokenizer: its tokenizer; the unit tokens are added to it.
        num_units: the quantizer's K.
        lora_rank: LoRA rank on every linear layer of the LM (0: the LM stays frozen but for its embeddings).
        keep_trainable: names of LM parameters that train in full (weights its checkpoint lacked, such as the LM head
            of a masked encoder loaded as a decoder).
    """

    def __init__(self, language_model, tokenizer, num_units: int, lora_rank: int = 8, keep_trainable=()):
        super().__init__()
        self.tokenizer = tokenizer
        self.num_units = num_units
        tokenizer.add_tokens(unit_tokens(num_units))
        language_model.resize_token_embeddings(len(tokenizer))
        for parameter in language_model.parameters():
            parameter.requires_grad_(False)
        kept = [parameter for name, parameter in language_model.named_parameters() if name in set(keep_trainable)]
        if lora_rank:
            from peft import LoraConfig, get_peft_model

            language_model = get_peft_model(
                language_model,
                LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules="all-linear", lora_dropout=0.0),
            )
        language_model.get_input_embeddings().weight.requires_grad_(True)
        for parameter in kept:
            parameter.requires_grad_(True)
        self.language_model = language_model
        config = language_model.config
        # a speech decoder used as a text LM: a transcript's start tokens first, and one zero frame of "audio"
        self.speech_decoder_width = config.d_model if config.model_type == "whisper" else None
        self.prefix_ids = (
            [config.decoder_start_token_id, tokenizer.convert_tokens_to_ids("<|notimestamps|>")]
            if self.speech_decoder_width
            else []
        )
        self.max_positions = getattr(config, "max_target_positions", None) or getattr(
            config, "max_position_embeddings", None
        )

    @classmethod
    def from_pretrained(cls, folder: str) -> VisualUnitRescorer:
        """A trained rescorer from ``elegance-train-vur``'s ``OUTPUT_DIR/vur``: its LM (LoRA merged) and its tokenizer
        with the unit tokens, in eval mode."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        num_units = sum(1 for token in tokenizer.get_vocab() if token.startswith(UNIT_TOKEN.split("{")[0]))
        if not num_units:
            raise ValueError(f"{folder} has no visual-unit tokens: pass the vur folder written by elegance-train-vur")
        language_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return cls(language_model, tokenizer, num_units, lora_rank=0).eval()

    def prompt(self, units) -> str:
        """The prompt of a clip's unit sequence ``(frames,)``, run-length compressed."""
        values, _ = run_length_compress(units)
        return PROMPT.format(units="".join(UNIT_TOKEN.format(value) for value in values))

    def score(self, units, hypotheses: list[str]) -> torch.Tensor:
        """``(N,)``: each hypothesis's summed token log-probability after the clip's prompt."""
        prompt_ids = self.prefix_ids + self.tokenizer(self.prompt(units), add_special_tokens=False)["input_ids"]
        rows = [
            prompt_ids + self.tokenizer(" " + text.strip(), add_special_tokens=False)["input_ids"]
            for text in hypotheses
        ]
        width = max(len(row) for row in rows)
        if self.max_positions and width > self.max_positions:
            raise ValueError(
                f"the prompt ({len(prompt_ids)} tokens, {len(units)} visual-unit frames) and the longest hypothesis "
                f"take {width} tokens, more than the {self.max_positions} positions of this LM; rescore shorter "
                f"clips or use an LM with a longer context"
            )
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = self.language_model.get_input_embeddings().weight.device
        ids = torch.tensor([row + [pad] * (width - len(row)) for row in rows], device=device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], device=device)
        extra = {}
        if self.speech_decoder_width:
            extra["encoder_outputs"] = (torch.zeros(len(rows), 1, self.speech_decoder_width, device=device),)
        logits = self.language_model(input_ids=ids, attention_mask=mask, **extra).logits[:, :-1].float()
        log_probs = logits.log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # (N, width - 1)
        # only the hypothesis's tokens count: position t predicts token t + 1
        positions = torch.arange(1, width, device=device)
        counted = (positions[None, :] >= len(prompt_ids)) & mask[:, 1:].bool()
        return (log_probs * counted).sum(-1)

    @staticmethod
    def listwise_loss(scores: torch.Tensor, word_error_rates) -> torch.Tensor:
        """Cross-entropy of the softmax over the N-best's ``scores`` against its lowest-WER hypothesis."""
        best = int(torch.as_tensor(word_error_rates, dtype=torch.float64).argmin())
        return nn.functional.cross_entropy(scores[None], torch.tensor([best], device=scores.device))

    @staticmethod
    def rerank(lm_scores: torch.Tensor, first_pass_scores: torch.Tensor, first_pass_weight: float) -> int:
        """The index of the hypothesis with the best LM score plus weighted first-pass score."""
        return int((lm_scores + first_pass_weight * first_pass_scores.to(lm_scores)).argmax())
