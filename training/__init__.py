"""Training with LLM guidance, export of the guidance-free model, and evaluation.

- ``train`` (``elegance-train``), ``trainer.GuidanceTrainer``, ``guided_model.GuidedModel``, ``heads/``;
- ``pslm_pretraining`` (``elegance-pretrain-pslm``), ``export`` (``elegance-export``);
- ``metrics``, ``metric_modules/`` (`evaluate` modules), ``evaluation`` and ``evaluate_model``
  (``elegance-evaluate``).

Submodules are imported on use: ``import training`` stays light.
"""
