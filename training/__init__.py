"""Training with LLM guidance, and the jobs around it, one room each.

- training itself: ``train`` (``elegance-train``), ``arguments``, ``trainer.GuidanceTrainer``,
  ``guided_model.GuidedModel``, the guidance ``heads/``, ``data`` (datasets and collators), ``dynamic_mixing``,
  the frozen-embedding caches (``transcript_embedding_cache``, ``lip_embedding_cache``), the LLM and PSLM loaders
  (``language_model``, ``speech_encoder``), accelerate configs (``configs/``);
- ``pretraining/``: the lip reader and the PSLM;
- ``evaluation/``: metrics, scoring, reports, ``elegance-evaluate``;
- ``release/``: ``elegance-export`` and ``elegance-push``;
- ``demo``: what ``make demo`` runs.

Submodules are imported on use: ``import training`` stays light.
"""
