"""The paper's GAN-CLS family: shapes, the loss by hand, mismatch sampling, training and the encoder-decoder."""

from __future__ import annotations

import math

import pytest
import torch

from cmav_models.gan_cls import (Discriminator, GanClsConfig, GanClsTraining, Generator, discriminator_loss,
                                 generate, generator_loss, mismatched_rows, train_encoder_decoder, train_gan_cls)
from cmav_models.train import Stage

torch.set_num_threads(1)


@pytest.mark.parametrize("channels,shape,n_up", [(3, (64, 64), 4), (3, (32, 32), 3), (1, (128, 44), 3)])
def test_shapes_both_directions(channels, shape, n_up):
    config = GanClsConfig(out_channels=channels, out_shape=shape, n_up=n_up, g_channels=4, d_channels=4)
    g, d = Generator(config), Discriminator(config)
    fake = g(torch.randn(5, 10), torch.randn(5, 128))
    assert fake.shape == (5, channels, *shape)
    assert fake.abs().max() <= 1
    assert d(fake, torch.randn(5, 128)).shape == (5,)
    # The paper's sizes: a 128-d feature to a 64-d code, with 10-d noise.
    assert g.code[0].in_features == 128 and g.code[0].out_features == 64 and config.noise_dim == 10


def test_the_discriminator_sees_the_code_after_its_conv_stack():
    config = GanClsConfig(out_shape=(32, 32), n_up=3, g_channels=4, d_channels=4)
    d = Discriminator(config).eval()
    x = torch.randn(2, 3, 32, 32)
    features = d.features(x)  # the sample alone
    assert features.shape[2:] == d.grid == (4, 4)
    a, b = torch.randn(2, 128), torch.randn(2, 128)
    assert torch.equal(d(x, a), d.score(features, a)) and not torch.allclose(d(x, a), d(x, b))


def test_gan_cls_losses_by_hand():
    # sigmoid(log 3) = 3/4, sigmoid(-log 3) = 1/4.
    real = torch.full((4,), math.log(3))  # D(real, match) = 3/4: -log(3/4)
    fake = torch.full((4,), -math.log(3))  # D(fake, match) = 1/4: -log(3/4)
    mismatched = torch.full((4,), math.log(3))  # D(real, mismatch) = 3/4: -log(1/4)
    with_term = discriminator_loss(real, fake, mismatched)
    assert with_term.item() == pytest.approx(-math.log(0.75) + (-math.log(0.75) - math.log(0.25)) / 2)
    # S2I-N: no mismatched term, the two plain terms at full weight.
    assert discriminator_loss(real, fake, None).item() == pytest.approx(-2 * math.log(0.75))
    assert generator_loss(fake).item() == pytest.approx(-math.log(0.25))
    zero = torch.zeros(3)
    assert discriminator_loss(zero, zero, zero).item() == pytest.approx(2 * math.log(2))


def test_mismatches_of_each_kind():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    pose = torch.tensor([0.0, 0.1, 0.6, float("nan"), 0.5, 0.55, 0.2])
    index = torch.arange(7)
    for seed in range(20):
        rng = torch.Generator().manual_seed(seed)
        other = mismatched_rows(labels, pose, index, "instrument", 0.25, rng)
        assert (labels[other] != labels).all()
        other = mismatched_rows(labels, pose, index, "pose", 0.25, rng)
        # Rows 0 and 1 have exactly one same-instrument partner at least 0.25 away: row 2.
        assert other[0] == 2 and other[1] == 2 and other[2] in (0, 1)
        # Unknown pose (3), or no pose far enough (4, 5), or one row of its instrument (6): another instrument.
        assert all(labels[other[i]] != labels[i] for i in (3, 4, 5, 6))
    one_class = torch.zeros(3, dtype=torch.long)
    other = mismatched_rows(one_class, torch.zeros(3), torch.arange(3), "instrument", 0.25,
                            torch.Generator().manual_seed(0))
    assert (other != torch.arange(3)).all()  # nothing fits: at least not the row itself
    draws = [mismatched_rows(labels, pose, torch.tensor([6]), "instrument", 0.25,
                             torch.Generator().manual_seed(s)).item() for s in range(200)]
    assert set(draws) == {0, 1, 2, 3, 4, 5}  # uniform over every fitting row, not a fixed one
    with pytest.raises(ValueError, match="kind"):
        mismatched_rows(labels, pose, index, "player", 0.25, torch.Generator())


def test_config_checks():
    with pytest.raises(ValueError, match="mismatch_kind"):
        GanClsConfig(mismatch_kind="player")
    with pytest.raises(ValueError, match="out_shape"):
        GanClsConfig(out_shape=(8, 8), n_up=4)
    with pytest.raises(ValueError, match="pose_margin"):
        GanClsConfig(pose_margin=1.5)


def _stage(tmp_path, name, seed=0) -> Stage:
    return Stage(name, tmp_path / f"{name}.pt", {"stage": name}, seed, torch.device("cpu"), progress=False)


def _toy(n=48):
    """Three classes of 8x8 images, each one flat colour, with one-hot conditions."""
    labels = torch.arange(n) % 3
    colours = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8)
    images = colours[labels][:, :, None, None].expand(-1, -1, 8, 8).contiguous()
    return images, torch.nn.functional.one_hot(labels, 3).float(), labels, torch.rand(n)


def _to_unit(x):
    return x.float() / 127.5 - 1


@pytest.mark.parametrize("kind", ["instrument", "pose"])
def test_training_runs_is_deterministic_and_resumes(tmp_path, kind):
    images, cond, labels, pose = _toy()
    config = GanClsConfig(out_shape=(8, 8), n_up=2, cond_dim=3, code_dim=4, g_channels=4, d_channels=4,
                          mismatch_kind=kind)

    def run(folder, epochs):
        torch.manual_seed(0)
        g, d = Generator(config), Discriminator(config)
        history = train_gan_cls(_stage(tmp_path / folder, "gan"), g, d, images, cond, labels, pose, _to_unit,
                                GanClsTraining(epochs=epochs, batch_size=8))
        return g, history

    g, history = run("a", 2)
    assert len(history) == 2 and all(math.isfinite(h["d_loss"]) and math.isfinite(h["g_loss"]) for h in history)
    run("b", 1)
    resumed, _ = run("b", 2)
    assert all(torch.equal(x, y) for x, y in zip(g.state_dict().values(), resumed.state_dict().values()))
    samples = generate(g, cond[:5], seed=3, device=torch.device("cpu"))
    assert samples.shape == (5, 3, 8, 8) and torch.equal(samples, generate(g, cond[:5], 3, torch.device("cpu")))


def test_the_encoder_decoder_learns_the_images_by_mean_squared_error(tmp_path):
    images, cond, labels, _ = _toy()
    config = GanClsConfig(out_shape=(8, 8), n_up=2, cond_dim=3, code_dim=4, g_channels=8, d_channels=4)
    torch.manual_seed(0)
    g = Generator(config)
    history = train_encoder_decoder(_stage(tmp_path, "s2i-a"), g, images, cond, _to_unit,
                                    GanClsTraining(epochs=30, batch_size=8, lr_generator=3e-3, beta1=0.9))
    assert history[-1]["mse"] < 0.2 * history[0]["mse"]
    samples = generate(g, cond, seed=0, device=torch.device("cpu"), noise=False)
    # Each class's generated image is closest to its own colour.
    error = ((samples[:, None] - _to_unit(images[:3])[None]) ** 2).mean(dim=(2, 3, 4))  # [N, 3]
    assert (error.argmin(1) == labels).all()
