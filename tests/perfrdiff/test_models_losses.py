"""Losses: supervised contrastive (hand-computed case), x0 regression, VAE."""

import math

import pytest
import torch
from perfrdiff.models.emotion_vae import vae_loss
from perfrdiff.models.losses import supervised_contrastive_loss, x0_loss


def test_supcon_matches_a_hand_computed_case():
    # z1 = z2 = (1, 0) share label 0, z3 = (0, 1) is alone. With τ = 0.5 the anchors 1 and 2 each
    # see logits {2 (positive), 0}; anchor 3 has no positive and is left out:
    # loss = -(2 - log(e² + e⁰)) = log(e² + 1) - 2.
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = supervised_contrastive_loss(z, torch.tensor([0, 0, 1]), temperature=0.5)
    assert loss.item() == pytest.approx(math.log(math.e**2 + 1) - 2, rel=1e-6)


def test_supcon_averages_over_all_positives_of_an_anchor():
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=-1)
    loss = supervised_contrastive_loss(z, torch.tensor([0, 0, 0]), temperature=1.0)
    sim = z @ z.T
    expected = 0.0
    for i in range(3):
        others = [j for j in range(3) if j != i]
        log_den = torch.logsumexp(sim[i, others], 0)
        expected += -sum(sim[i, j] - log_den for j in others) / 2
    assert loss.item() == pytest.approx(expected.item() / 3, rel=1e-6)


def test_supcon_is_lower_when_same_listeners_cluster():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert supervised_contrastive_loss(clustered, labels) < supervised_contrastive_loss(
        mixed, labels
    )


def test_supcon_without_any_positive_raises():
    with pytest.raises(ValueError, match="positive"):
        supervised_contrastive_loss(torch.eye(3), torch.tensor([0, 1, 2]))


def test_supcon_names_bad_labels_shape():
    with pytest.raises(ValueError, match="labels"):
        supervised_contrastive_loss(torch.eye(3), torch.tensor([0, 1]))


def test_x0_loss_is_mse_and_checks_shapes():
    assert x0_loss(torch.ones(2, 3, 4), torch.zeros(2, 3, 4)).item() == 1.0
    with pytest.raises(ValueError, match="prediction"):
        x0_loss(torch.ones(2, 3, 4), torch.zeros(2, 3, 5))


def test_vae_loss_is_zero_for_perfect_reconstruction_and_standard_posterior():
    x = torch.randn(2, 5, 25)
    loss, parts = vae_loss(x, x, torch.zeros(2, 8), torch.zeros(2, 8), kl_weight=1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-7) and parts["kl"] == pytest.approx(0.0)
