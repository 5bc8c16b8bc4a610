"""The interactive views work without Jupyter: build them, drive the sliders, read the image."""

import matplotlib
import numpy as np
import pytest
import torch

from course_utils import widgets
from course_utils.vae import VAE

matplotlib.use("Agg")


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return VAE(64, z_dim=3, hidden_dims=(16,))


def test_interpolation_slider_moves_from_a_to_b(model):
    x_a, x_b = torch.zeros(64), torch.ones(64)
    box = widgets.interpolation_slider(model, x_a, x_b, (8, 8), steps=10)
    with torch.no_grad():
        mu = model.encode(torch.stack([x_a, x_b]))[0]
        ends = model.decode_mean(mu).reshape(2, 8, 8).numpy()
    np.testing.assert_allclose(box.decoded, ends[0], atol=1e-6)
    png_a = box.image.value
    box.slider.value = 1.0
    np.testing.assert_allclose(box.decoded, ends[1], atol=1e-6)
    assert box.image.value != png_a and box.image.value[:4] == b"\x89PNG"
    box.slider.value = 0.5
    with torch.no_grad():
        middle = model.decode_mean(mu.mean(0, keepdim=True)).reshape(8, 8).numpy()
    np.testing.assert_allclose(box.decoded, middle, atol=1e-6)


def test_latent_explorer_decodes_the_slider_values(model):
    box = widgets.latent_explorer(model, (8, 8), z=[0.5, 0.0, -1.0])
    assert [s.description for s in box.sliders] == ["z1", "z2", "z3"]
    assert [s.value for s in box.sliders] == pytest.approx([0.5, 0.0, -1.0])
    box.sliders[1].value = 2.0
    torch.testing.assert_close(box.z, torch.tensor([0.5, 2.0, -1.0]))
    with torch.no_grad():
        expected = model.decode_mean(box.z.unsqueeze(0)).reshape(8, 8).numpy()
    np.testing.assert_allclose(box.decoded, expected, atol=1e-6)


def test_latent_explorer_limits_the_number_of_sliders():
    model = VAE(64, z_dim=12, hidden_dims=(8,))
    box = widgets.latent_explorer(model, (8, 8), max_dims=4)
    assert len(box.sliders) == 4 and box.z.shape == (12,)


def test_widgets_validate_inputs(model):
    with pytest.raises(ValueError, match="image_shape"):
        widgets.latent_explorer(model, (8,))
    with pytest.raises(ValueError, match="latent size"):
        widgets.latent_explorer(model, (8, 8), z=[0.0])
    with pytest.raises(ValueError, match="64 pixels"):
        widgets.interpolation_slider(model, torch.zeros(10), torch.zeros(64))
    with pytest.raises(TypeError, match="trained VAE"):
        widgets.interpolation_slider(lambda z: z, torch.zeros(64), torch.zeros(64))
    with pytest.raises(ValueError, match="steps"):
        widgets.interpolation_slider(model, torch.zeros(64), torch.zeros(64), steps=1)
