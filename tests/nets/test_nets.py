"""Every registered network builds and maps (N, 3, h, w) to the right output size."""
from __future__ import annotations

import pytest
import torch

from srcli.checkpoints import registry
from srcli.nets.dsgan import DSGANDiscriminator, colour_loss, high_pass, low_pass
from srcli.nets.esrgan import VGGStyleDiscriminator
from srcli.nets.mdsr import MDSR
from srcli.nets.srresnet import SRGANDiscriminator
from srcli.nets.vgg import VGG19Features, vgg19_layer_names

TINY = {
    "edsr": dict(num_blocks=2, num_features=8),
    "mdsr": dict(num_blocks=2, num_features=8),
    "srresnet": dict(num_blocks=2, num_features=8),
    "srgan": dict(num_blocks=2, num_features=8),
    "esrgan": dict(num_blocks=1, num_features=8, growth=4),
    "dsgan": dict(num_blocks=2, num_features=8),
    "srvgg": dict(num_convs=2, num_features=8),
}


@pytest.mark.parametrize("name", sorted(registry.ARCHITECTURES))
def test_forward_shape_every_scale(name: str) -> None:
    architecture = registry.get_architecture(name)
    x = torch.rand(2, 3, 12, 10)
    if name == "mdsr":
        model = registry.build(name, **TINY[name]).eval()
        for scale in architecture.scales:
            assert model(x, scale).shape == (2, 3, 12 * scale, 10 * scale)
        return
    for scale in architecture.scales:
        model = registry.build(name, scale=scale, **TINY[name]).eval()
        expected = 1 if name == "dsgan" else scale
        with torch.no_grad():
            assert model(x).shape == (2, 3, 12 * expected, 10 * expected), (name, scale)
        assert all(model.config[key] == value for key, value in TINY[name].items())


def test_paper_hyperparameters_are_defaults() -> None:
    assert registry.build("esrgan").config["num_blocks"] == 23
    edsr = registry.build("edsr", scale=2)
    assert edsr.config["num_blocks"] == 16 and edsr.config["num_features"] == 64
    assert abs(sum(p.numel() for p in edsr.parameters() if p.requires_grad) - 1_369_859) < 5_000
    assert registry.build("dsgan").config["num_blocks"] == 8


def test_esrgan_unshuffle_variants() -> None:
    for scale, unshuffle, in_channels in ((2, 2, 12), (1, 4, 48)):
        model = registry.build("esrgan", scale=scale, unshuffle=unshuffle, num_blocks=1, num_features=8, growth=4)
        assert model.conv_first.in_channels == in_channels
        assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16 * scale, 16 * scale)


def test_mdsr_rejects_unknown_scale() -> None:
    model = MDSR(scales=(2, 4), num_blocks=1, num_features=8)
    with pytest.raises(ValueError):
        model(torch.rand(1, 3, 8, 8), 3)


def test_discriminators() -> None:
    assert SRGANDiscriminator(num_features=8, input_size=96)(torch.rand(2, 3, 96, 96)).shape == (2, 1)
    assert VGGStyleDiscriminator(num_features=8)(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    assert DSGANDiscriminator(num_features=8)(torch.rand(2, 3, 20, 20)).shape == (2, 1, 20, 20)


def test_vgg_layer_names_follow_torchvision() -> None:
    names = vgg19_layer_names()
    assert names["conv5_4"] == 34 and names["relu5_4"] == 35 and names["conv1_1"] == 0 and names["pool1"] == 4
    vgg = VGG19Features("conv2_2")
    assert [k for k in vgg.state_dict()][:2] == ["features.0.weight", "features.0.bias"]
    # before activation: conv5_4 output can be negative, relu5_4 cannot
    assert isinstance(vgg.features[-1], torch.nn.Conv2d)


def test_low_and_high_pass_split_the_image() -> None:
    image = torch.rand(1, 3, 16, 16)
    assert torch.allclose(low_pass(image) + high_pass(image), image, atol=1e-6)
    constant = torch.full((1, 3, 16, 16), 0.4)
    assert high_pass(constant).abs().max() < 1e-6


def _interior(image: torch.Tensor, margin: int = 2) -> torch.Tensor:
    """Away from the replicate padding, where the filters see only the image."""
    return image[..., margin:-margin, margin:-margin]


def _fine_pattern(size: int, gaussian: bool) -> torch.Tensor:
    """Period-5 zero-sum columns (the 5x5 box nulls them), or a Nyquist checkerboard (the Gaussian's weakest band)."""
    index = torch.arange(size)
    if gaussian:
        return ((-1.0) ** (index[:, None] + index[None, :])).expand(1, 3, size, size)
    return torch.tensor([1.0, -1.0, 0.0, 1.0, -1.0])[index % 5].expand(1, 3, size, size)


@pytest.mark.parametrize("gaussian", [False, True])
def test_colour_term_ignores_high_frequencies_but_not_a_colour_shift(gaussian: bool) -> None:
    """DSGAN's colour loss compares low-passes, so G may add fine detail freely but not change colours."""
    image = low_pass(torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0)))
    def colour_term(a: torch.Tensor, b: torch.Tensor) -> float:
        return _interior(colour_loss(a, b, gaussian=gaussian, reduction="none")).mean().item()
    detail = 0.2 * _fine_pattern(40, gaussian)
    assert colour_term(image + detail, image) < (1e-6 if not gaussian else 0.002 * 0.2)
    assert colour_term(image + 0.1, image) == pytest.approx(0.1, rel=1e-4)


@pytest.mark.parametrize("gaussian", [False, True])
def test_gan_input_keeps_fine_detail_and_drops_smooth_content(gaussian: bool) -> None:
    """The discriminator sees image minus low-pass: flat colour and linear gradients vanish, fine texture stays."""
    rows, cols = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 40), indexing="ij")
    smooth = (0.3 + 0.4 * rows - 0.2 * cols).expand(1, 3, 40, 40)
    assert _interior(high_pass(smooth, gaussian=gaussian)).abs().max() < 1e-5
    detail = 0.2 * _fine_pattern(40, gaussian)
    kept = _interior(high_pass(smooth + detail, gaussian=gaussian))
    assert torch.allclose(kept, _interior(detail), atol=0.002 * 0.2 if gaussian else 1e-5)
