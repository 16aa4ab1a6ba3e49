"""`GuidanceTrainer`: a `transformers.Trainer` for a :class:`GuidedModel`.

- logs every loss component (``loss_extraction``, ``loss_output``, ...), averaged over the logging window and
  over processes;
- checkpoints hold :meth:`GuidedModel.checkpoint_state_dict` (no frozen LLM/PSLM weights) plus
  ``elegance_training.json``, which says how to rebuild the run (and lets ``elegance-export`` strip it);
- a checkpoint is written into a staging folder and renamed into place once complete, so an interrupted save never
  leaves a half-written ``checkpoint-N`` for ``--resume_from_checkpoint`` to pick up;
- resumed from a checkpoint that holds all ``max_steps`` steps, it loads the checkpoint and trains no further.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import safetensors.torch
import torch
from transformers import Trainer, TrainerState
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput, rotate_checkpoints

TRAINING_RECORD = "elegance_training.json"
WEIGHTS_NAME = "model.safetensors"
STAGING_DIR = ".staging"


class GuidanceTrainer(Trainer):
    r"""
    Args:
        training_record: JSON-serialisable description of the run (backbone config, guidance arguments), saved with
            every checkpoint.
        All other arguments are `Trainer`'s.
    """

    def __init__(self, *args, training_record: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.training_record = training_record or {}
        self._component_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self._component_counts = {"train": 0, "eval": 0}
        self._staging = False
        self._wall_start, self._wall_offset = time.time(), None

    # ---- loss and logging ----

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training and not torch.isfinite(outputs.loss):
            components = ", ".join(f"{name} {float(value):.4g}" for name, value in outputs.components.items())
            raise FloatingPointError(
                f"the training loss is {float(outputs.loss)} at step {self.state.global_step} ({components}): the "
                f"run diverged; resume from the last checkpoint in {self.args.output_dir} with a lower "
                "--learning_rate or guidance weight, or check the inputs"
            )
        mode = "train" if model.training else "eval"
        sums = self._component_sums[mode]
        for name, value in outputs.components.items():
            sums[name] = sums.get(name, 0.0) + value.float()
        self._component_counts[mode] += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _component_logs(self, mode: str, prefix: str) -> dict[str, float]:
        sums, count = self._component_sums[mode], self._component_counts[mode]
        if not count:
            return {}
        names = sorted(sums)
        values = torch.stack([torch.as_tensor(sums[name]) for name in names]).to(self.args.device) / count
        values = self.accelerator.reduce(values, reduction="mean")
        self._component_sums[mode], self._component_counts[mode] = {}, 0
        return {f"{prefix}loss_{name}": round(float(value), 6) for name, value in zip(names, values)}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # training minutes so far, across resumes: learning curves against time read it
        if self._wall_offset is None:
            earlier = [entry["wall_minutes"] for entry in self.state.log_history if "wall_minutes" in entry]
            self._wall_offset = earlier[-1] if earlier else 0.0
        logs["wall_minutes"] = round(self._wall_offset + (time.time() - self._wall_start) / 60, 3)
        if "loss" in logs:
            logs.update(self._component_logs("train", ""))
        if "eval_loss" in logs:
            logs.update(self._component_logs("eval", "eval_"))
        super().log(logs, start_time)

    # ---- checkpoints ----

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs) -> TrainOutput:
        """`Trainer.train`, except on a finished run: resumed from a checkpoint of all ``max_steps`` steps, Trainer
        takes one more step before it checks its budget (transformers 5.25), so here the checkpoint's weights and
        state are loaded and nothing is trained."""
        if isinstance(resume_from_checkpoint, str) and self.args.max_steps > 0:
            state = TrainerState.load_from_json(os.path.join(resume_from_checkpoint, TRAINER_STATE_NAME))
            if state.global_step >= self.args.max_steps:
                self._load_from_checkpoint(resume_from_checkpoint)
                self.state = state
                print(f"{resume_from_checkpoint} holds all {self.args.max_steps} steps: nothing left to train")
                return TrainOutput(state.global_step, float("nan"), {})
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.checkpoint_state_dict().items()}
        safetensors.torch.save_file(tensors, os.path.join(output_dir, WEIGHTS_NAME), metadata={"format": "pt"})
        with open(os.path.join(output_dir, TRAINING_RECORD), "w") as stream:
            json.dump(self.training_record, stream, indent=2)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        weights = os.path.join(resume_from_checkpoint, WEIGHTS_NAME)
        if not os.path.isfile(weights):
            raise ValueError(f"{resume_from_checkpoint} is not an elegance checkpoint: it has no {WEIGHTS_NAME}")
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        model.load_checkpoint_state_dict(safetensors.torch.load_file(weights, device="cpu"))

    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING_DIR) if self._staging else run_dir

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial)
        staging_run = os.path.join(run_dir, STAGING_DIR)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state
        if self.args.should_save:
            staged, final = os.path.join(staging_run, name), os.path.join(run_dir, name)
            if self.state.best_model_checkpoint and self.state.best_model_checkpoint.startswith(staging_run):
                self.state.best_model_checkpoint = os.path.join(
                    run_dir, os.path.basename(self.state.best_model_checkpoint)
                )
                self.state.save_to_json(os.path.join(staged, "trainer_state.json"))
            if os.path.exists(final):
                shutil.rmtree(final)
            os.replace(staged, final)
            shutil.rmtree(staging_run, ignore_errors=True)
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()
