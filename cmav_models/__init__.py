"""cmav_models: reference networks, training and metrics for cross-modal audio-visual generation.

Read downwards: ``data`` (a built Sub-URMP as tensors) -> the networks, one file each
(``image_classifier``, ``sound_classifier``, ``sound_autoencoder``, ``cgan`` for S2I and I2S) ->
``train`` (loops, seeds, per-epoch checkpoints via ``checkpoints``) -> ``metrics`` (a registry
looked up by name) -> ``report`` (report.md and figures) -> ``bench`` (the stages of
``cmav-bench run`` and its suites) -> ``cli``.
"""
