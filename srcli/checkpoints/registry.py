"""Name -> network constructor, default hyper-parameters and the checkpoint layouts each accepts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..nets.dsgan import DSGANDiscriminator, DSGANGenerator
from ..nets.edsr import EDSR
from ..nets.esrgan import RRDBNet, VGGStyleDiscriminator
from ..nets.mdsr import MDSR
from ..nets.srresnet import MSRResNet, SRGANDiscriminator, SRResNet
from ..nets.srvgg import SRVGGNetCompact


@dataclass(frozen=True)
class Architecture:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    scales: tuple[int, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    layouts: tuple[str, ...] = ()
    discriminator: Callable[..., nn.Module] | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "edsr": Architecture(
        "edsr", EDSR, "EDSR (baseline 16x64; paper 32x256, res_scale 0.1)", (2, 3, 4),
        {"num_blocks": 16, "num_features": 64, "res_scale": 1.0},
        ("srcli safetensors", "EDSR-PyTorch (sub_mean, head.0, body.N.body.0, tail.0.0)",
         "BasicSR EDSR (conv_first, body.N.conv1, conv_after_body, upsample.0)")),
    "mdsr": Architecture(
        "mdsr", MDSR, "MDSR: shared body, per-scale heads/tails", (2, 3, 4),
        {"num_blocks": 16, "num_features": 64, "res_scale": 1.0},
        ("srcli safetensors", "EDSR-PyTorch MDSR (pre_process.k, upsample.k)")),
    "srresnet": Architecture(
        "srresnet", SRResNet, "SRResNet (BN, PReLU, 16 blocks)", (2, 3, 4),
        {"num_blocks": 16, "num_features": 64},
        ("srcli safetensors", "BasicSR MSRResNet (conv_first, body.N.conv1, upconv1, conv_hr)"),
        SRGANDiscriminator),
    "srgan": Architecture(
        "srgan", SRResNet, "SRGAN: SRResNet generator, GAN-trained", (2, 3, 4),
        {"num_blocks": 16, "num_features": 64},
        ("srcli safetensors",), SRGANDiscriminator),
    "esrgan": Architecture(
        "esrgan", RRDBNet, "ESRGAN RRDBNet (23 RRDB, nf 64, gc 32)", (1, 2, 4),
        {"num_blocks": 23, "num_features": 64, "growth": 32},
        ("srcli safetensors", "ESRGAN old (model.0, model.1.sub.N.RDB1.conv1.0)",
         "ESRGAN new (conv_first, RRDB_trunk.N.RDB1.conv1, trunk_conv, upconv1, HRconv)",
         "BasicSR/Real-ESRGAN (conv_body, body.N.rdb1.conv1, conv_up1, conv_hr; params/params_ema)"),
        VGGStyleDiscriminator),
    "dsgan": Architecture(
        "dsgan", DSGANGenerator, "DSGAN degradation generator (8 residual blocks, same size out)", (1,),
        {"num_blocks": 8, "num_features": 64},
        ("srcli safetensors", "DSGAN training checkpoint (.tar with model_g_state_dict)"),
        DSGANDiscriminator),
    "srvgg": Architecture(
        "srvgg", SRVGGNetCompact,
        "Real-ESRGAN SRVGGNetCompact (64 features, 32 convs, PReLU; animevideov3: 16 convs)", (1, 2, 3, 4),
        {"num_features": 64, "num_convs": 32, "activation": "prelu"},
        ("srcli safetensors",
         ("Real-ESRGAN compact: realesr-general-x4v3, realesr-general-wdn-x4v3, realesr-animevideov3 "
          "(body.N; params/params_ema)"))),
}

#: Architectures that files may contain beyond the registered names (built by checkpoint detection).
EXTRA_BUILDERS: dict[str, Callable[..., nn.Module]] = {"msrresnet": MSRResNet}


class UnknownArchitecture(ValueError):
    pass


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownArchitecture(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None


def build(name: str, **config: Any) -> nn.Module:
    """Build a network by registered name (or an extra architecture such as ``msrresnet``)."""
    if name in EXTRA_BUILDERS:
        return EXTRA_BUILDERS[name](**config)
    architecture = get_architecture(name)
    merged = {**architecture.defaults, **config}
    if name == "mdsr":
        merged.pop("scale", None)
    if name == "dsgan":
        merged.setdefault("scale", 1)
    return architecture.builder(**merged)


def build_discriminator(name: str, **config: Any) -> nn.Module:
    architecture = get_architecture(name)
    if architecture.discriminator is None:
        raise UnknownArchitecture(f"{name} has no discriminator")
    return architecture.discriminator(**config)
