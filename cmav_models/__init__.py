"""cmav_models: reference networks, training and metrics for cross-modal audio-visual generation.

Read downwards: ``data`` (a built Sub-URMP as tensors) -> the encoders and judges, one file each
(``image_classifier``, ``sound_classifier``, ``sound_autoencoder``) and ``projection_gan`` (our
projection/hinge GAN) -> ``train`` (loops, seeds, per-epoch checkpoints via ``checkpoints``) -> the
other generator families, one file each with its own loop (``gan_cls``: the paper's GAN;
``flow_matching``: ours) -> ``kid`` and ``metrics`` (a registry looked up by name) -> ``report``
(report.md, figures, sound) -> ``bench`` (the stages of ``cmav-bench run`` and its suites) -> ``cli``.
"""
