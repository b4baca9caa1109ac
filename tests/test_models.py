"""The reference networks, their losses, checkpoints, training determinism/resume, and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from cmav_models.projection_gan import CGANConfig, Discriminator, Generator, discriminator_loss, generator_loss
from cmav_models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from cmav_models.data import augment_images
from cmav_models.image_classifier import ImageCNN, ImageCNNConfig
from cmav_models.metrics import METRICS, Scored, UnknownMetricError, frechet_distance, get_metric, register_metric
from cmav_models.sound_autoencoder import SoundAutoencoder, SoundAutoencoderConfig
from cmav_models.train import GANTrainConfig, Stage, TrainConfig, classification_loss, mismatched_indices, \
    train_cgan, train_supervised

torch.set_num_threads(1)  # small networks on shared cores: one thread is fastest


@pytest.mark.parametrize("size,depth", [(64, 4), (128, 5)])
def test_image_classifier_shapes(size, depth):
    model = ImageCNN(ImageCNNConfig(image_size=size, depth=depth, channels=8)).eval()
    x = torch.randn(3, 3, size, size)
    assert model(x).shape == (3, 13)
    assert model.embed(x).shape == (3, 128)


def test_autoencoder_reconstructs_the_input_shape():
    model = SoundAutoencoder(SoundAutoencoderConfig(channels=4, embed_dim=16))
    x = torch.rand(2, 1, 128, 44) * 2 - 1
    assert model(x).shape == x.shape and model.embed(x).shape == (2, 16)


@pytest.mark.parametrize("channels,shape", [(3, (64, 64)), (1, (128, 44)), (3, (32, 32))])
def test_gan_shapes_both_directions(channels, shape):
    config = CGANConfig(out_channels=channels, out_shape=shape, cond_dim=10, g_channels=4, d_channels=4)
    g, d = Generator(config), Discriminator(config)
    fake = g(torch.randn(5, config.noise_dim), torch.randn(5, 10))
    assert fake.shape == (5, channels, *shape)
    assert fake.abs().max() <= 1  # tanh range, the range real samples are scaled to
    assert d(fake, torch.randn(5, 10)).shape == (5,)


class _ConditionProduct:
    """A hand-checkable discriminator: score = (mean pixel of the sample) x (first condition value)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1, keepdim=True)

    def score(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return features[:, 0] * cond[:, 0]

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x), cond)


def test_hinge_losses_and_the_mismatch_term_by_hand():
    d = _ConditionProduct()
    real, fake = torch.ones(6, 3, 4, 4), -torch.ones(6, 3, 4, 4)
    cond, wrong = torch.full((6, 1), 2.0), torch.full((6, 1), -0.5)
    # Scores: real pairs +2, fake pairs -2 (both beyond the hinge margin: no loss), real images with
    # the wrong condition -0.5 (inside the margin: loss 0.5, half weighted beside the fake pairs).
    assert discriminator_loss(d, real, fake, cond, None).item() == pytest.approx(0.0)
    assert discriminator_loss(d, real, fake, cond, wrong).item() == pytest.approx(0.25)
    assert discriminator_loss(d, real, fake, cond * 0, None).item() == pytest.approx(2.0)  # all scores 0
    assert generator_loss(d, fake, cond).item() == pytest.approx(2.0)


def test_mismatched_pairs_are_another_instrument_or_another_time():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    index = torch.arange(8).repeat(20)
    g = torch.Generator().manual_seed(0)
    other_instrument = mismatched_indices(labels, index, 0.0, g)
    assert (labels[other_instrument] != labels[index]).all()
    same_instrument = mismatched_indices(labels, index, 1.0, g)
    assert (labels[same_instrument] == labels[index]).all() and (same_instrument != index).all()
    mixed = mismatched_indices(labels, index, 0.5, g)
    same = labels[mixed] == labels[index]
    assert 0.2 < same.float().mean() < 0.8 and (mixed[same] != index[same]).all()


def test_frechet_distance_matches_the_sqrtm_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 6))
    b = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 0.5
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert abs(frechet_distance(a, a)) < 1e-8
    # Fewer rows than dimensions (singular covariances) still gives a finite number.
    assert np.isfinite(frechet_distance(a[:4], b[:3]))


def test_metric_registry_lookup_and_extension():
    assert {"accuracy", "frechet", "pose_r", "pose_mae"} <= set(METRICS)
    with pytest.raises(UnknownMetricError, match="unknown metric 'nope'.*accuracy"):
        get_metric("nope")

    @register_metric("test_mean_label", "mean class index of the conditions", higher_is_better=True)
    def mean_label(scored: Scored) -> float:
        return float(scored.labels.float().mean())

    try:
        assert get_metric("test_mean_label").fn is mean_label
    finally:
        del METRICS["test_mean_label"]


def _stage(tmp_path, name="s", seed=0) -> Stage:
    return Stage(name, tmp_path / f"{name}.pt", {"stage": name, "feature_config": {"n_mels": 128}}, seed,
                 torch.device("cpu"), progress=False)


def _tiny_gan_run(stage: Stage, epochs: int) -> Generator:
    torch.manual_seed(0)
    config = CGANConfig(cond_dim=4, out_shape=(8, 8), n_up=2, noise_dim=4, g_channels=4, d_channels=4)
    g, d = Generator(config), Discriminator(config)
    samples = torch.randint(0, 256, (24, 3, 8, 8), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    labels = torch.arange(24) % 3
    conditions = torch.nn.functional.one_hot(labels, 4).float()
    train_cgan(stage, g, d, samples, conditions, labels, lambda x: x.float() / 127.5 - 1,
               GANTrainConfig(epochs=epochs, batch_size=8))
    return g


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_gan_training_is_deterministic_and_resumes_exactly(tmp_path):
    straight = _tiny_gan_run(_stage(tmp_path / "a"), epochs=2)
    again = _tiny_gan_run(_stage(tmp_path / "b"), epochs=2)
    assert _same_weights(straight, again)
    _tiny_gan_run(_stage(tmp_path / "c"), epochs=1)  # "killed" after one epoch
    resumed = _tiny_gan_run(_stage(tmp_path / "c"), epochs=2)
    assert _same_weights(straight, resumed)
    other_seed = _tiny_gan_run(_stage(tmp_path / "d", seed=1), epochs=2)
    assert not _same_weights(straight, other_seed)


def test_classifier_training_learns_a_separable_toy_problem(tmp_path):
    torch.manual_seed(0)
    model = ImageCNN(ImageCNNConfig(n_classes=2, image_size=16, depth=2, channels=4, embed_dim=8))
    labels = torch.arange(64) % 2
    images = (labels[:, None, None, None] * 200 + torch.randint(0, 50, (64, 3, 16, 16))).to(torch.uint8)
    history = train_supervised(_stage(tmp_path), model, images, labels, classification_loss,
                               lambda x: x.float() / 127.5 - 1, TrainConfig(epochs=4, batch_size=16, lr=1e-2))
    assert history[-1]["loss"] < history[0]["loss"]
    with torch.no_grad():
        assert (model(images.float() / 127.5 - 1).argmax(1) == labels).float().mean() > 0.9


def test_augmented_images_are_shifted_crops_with_jittered_colour():
    images = torch.rand(16, 3, 32, 32) * 2 - 1
    out = augment_images(images, torch.Generator().manual_seed(3))
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, augment_images(images, torch.Generator().manual_seed(3)))  # seeded, so resumable
    assert not torch.equal(out, augment_images(images, torch.Generator().manual_seed(4)))
    # A shift of at most 2 px (32 / 16): the centre of the output is the input's, displaced.
    plain = torch.zeros(1, 3, 32, 32)
    plain[0, :, 16, 16] = 1.0
    for seed in range(8):
        moved = augment_images(plain, torch.Generator().manual_seed(seed))
        peak = (moved[0].mean(0) == moved[0].mean(0).max()).nonzero()
        assert len(peak) == 1 and (peak[0] - 16).abs().max() <= 2


def test_augmentation_only_where_the_task_has_one(tmp_path):
    model = SoundAutoencoder(SoundAutoencoderConfig(channels=4, embed_dim=8))
    x = torch.zeros(4, 1, 128, 44)
    with pytest.raises(ValueError, match="no augmentation"):
        train_supervised(_stage(tmp_path), model, x, x, torch.nn.functional.mse_loss, lambda t: t,
                         TrainConfig(epochs=1, batch_size=2, augment=True))


def test_cosine_schedule_decays_and_resumes_exactly(tmp_path):
    config = TrainConfig(epochs=4, batch_size=16, lr=1e-2, schedule="cosine", augment=True)
    assert [round(config.lr_factor(e), 3) for e in range(4)] == [1.0, 0.854, 0.5, 0.146]
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="linear")
    labels = torch.arange(32) % 2
    images = (labels[:, None, None, None] * 200 + torch.randint(0, 50, (32, 3, 16, 16))).to(torch.uint8)

    def run(stage, stop_after_batches=None):
        torch.manual_seed(0)
        model = ImageCNN(ImageCNNConfig(n_classes=2, image_size=16, depth=2, channels=4, embed_dim=8))
        calls = []

        def loss(logits, y):  # interrupts training part-way through an epoch, like a kill
            calls.append(1)
            if stop_after_batches is not None and len(calls) > stop_after_batches:
                raise KeyboardInterrupt
            return classification_loss(logits, y)

        train_supervised(stage, model, images, labels, loss, lambda x: x.float() / 127.5 - 1, config,
                         augment_images)
        return model

    straight = run(_stage(tmp_path / "a"))
    with pytest.raises(KeyboardInterrupt):
        run(_stage(tmp_path / "b"), stop_after_batches=5)  # 2 batches an epoch: killed in epoch 3
    assert len(load_checkpoint(tmp_path / "b" / "s.pt", {})["history"]) == 2
    resumed = run(_stage(tmp_path / "b"))
    assert _same_weights(straight, resumed)
    constant = TrainConfig(**{**config.__dict__, "schedule": "constant"})
    torch.manual_seed(0)
    other = ImageCNN(ImageCNNConfig(n_classes=2, image_size=16, depth=2, channels=4, embed_dim=8))
    train_supervised(_stage(tmp_path / "c"), other, images, labels, classification_loss,
                     lambda x: x.float() / 127.5 - 1, constant, augment_images)
    assert not _same_weights(straight, other)  # the schedule is applied


def test_corrupt_checkpoint_and_other_feature_config_are_clear_errors(tmp_path):
    path = tmp_path / "stage.pt"
    save_checkpoint(path, {"meta": {"feature_config": {"n_mels": 128}}, "x": torch.zeros(2)})
    assert torch.equal(load_checkpoint(path, {"feature_config": {"n_mels": 128}})["x"], torch.zeros(2))
    with pytest.raises(CheckpointError, match="features made with another config"):
        load_checkpoint(path, {"feature_config": {"n_mels": 64}})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"{path.name}: corrupt checkpoint"):
        load_checkpoint(path, {})


def test_sound_classifier_keep_frequency_embeds_every_remaining_row():
    from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig

    x = torch.randn(2, 1, 128, 44)
    pooled = SoundCNN(SoundCNNConfig(channels=4)).eval()
    per_row = SoundCNN(SoundCNNConfig(channels=4, keep_frequency=True)).eval()
    assert pooled.embed(x).shape == (2, 4)
    assert per_row.embed(x).shape == (2, 4 * 128 // 2 ** 4) and per_row(x).shape == (2, 13)
    # The same energy in low or in high mel rows: an embedding pooled over time only tells them apart.
    low, high = torch.zeros(1, 1, 128, 44), torch.zeros(1, 1, 128, 44)
    low[:, :, 10:14], high[:, :, 90:94] = 1.0, 1.0
    assert not torch.allclose(per_row.embed(low), per_row.embed(high))


def test_one_row_left_makes_both_poolings_the_same_network():
    from cmav_models.sound_classifier import SoundCNN, SoundCNNConfig
    x = torch.randn(4, 1, 20, 44)
    nets = {}
    for keep in (False, True):
        torch.manual_seed(0)
        nets[keep] = SoundCNN(SoundCNNConfig(depth=5, in_shape=(20, 44), channels=4, keep_frequency=keep)).eval()
    assert nets[True].rows_out == nets[False].rows_out == 1  # 20 MFCC rows, 5 poolings: the table's note
    assert torch.equal(nets[True](x), nets[False](x))
    assert SoundCNN(SoundCNNConfig(depth=4, in_shape=(128, 44), channels=4, keep_frequency=True)).rows_out == 8
