"""Foreign checkpoint layouts: each is made from a tiny srcli network by renaming its keys, then loaded back."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from srcli.checkpoints import registry
from srcli.checkpoints.io import CheckpointError, load_model, read_checkpoint_file, read_state_dict, save_model
from srcli.checkpoints.layouts import detect_layout
from srcli.checkpoints.shipped import sha256_of

Tensors = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------
# helpers (independent of srcli.layouts)
# --------------------------------------------------------------------------------------------

def tiny(name: str, seed: int = 0, **config: Any) -> nn.Module:
    """A small network with every tensor random (BN statistics included) except the mean shifts."""
    torch.manual_seed(seed)
    model = registry.build(name, **config)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if not value.is_floating_point() or key.startswith(("sub_mean.", "add_mean.")):
                continue
            if key.endswith("running_var"):
                value.copy_(torch.rand_like(value) + 0.5)
            else:
                value.copy_(torch.randn_like(value) * 0.1)
    return model.eval()


def plain_state(model: nn.Module) -> Tensors:
    return {key: value.clone() for key, value in model.state_dict().items()}


def rename(state: Tensors, rules: list[tuple[str, str]]) -> Tensors:
    out = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            if re.fullmatch(pattern, key):
                key = re.sub(pattern, replacement, key)
                break
        out[key] = value
    return out


def to_esrgan_old(state: Tensors, num_blocks: int, num_upsamples: int) -> Tensors:
    rules = [
        (r"conv_first\.(\w+)", r"model.0.\1"),
        (r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(\w+)", r"model.1.sub.\1.RDB\2.conv\3.0.\4"),
        (r"conv_body\.(\w+)", rf"model.1.sub.{num_blocks}.\1"),
        (r"conv_hr\.(\w+)", rf"model.{3 * num_upsamples + 2}.\1"),
        (r"conv_last\.(\w+)", rf"model.{3 * num_upsamples + 4}.\1"),
    ]
    rules += [(rf"conv_up{i}\.(\w+)", rf"model.{3 * i}.\1") for i in range(1, num_upsamples + 1)]
    return rename(state, rules)


def to_esrgan_new(state: Tensors) -> Tensors:
    return rename(state, [
        (r"body\.(\d+)\.rdb(\d)\.(\w+)\.(\w+)", r"RRDB_trunk.\1.RDB\2.\3.\4"),
        (r"conv_body\.(\w+)", r"trunk_conv.\1"),
        (r"conv_up(\d)\.(\w+)", r"upconv\1.\2"),
        (r"conv_hr\.(\w+)", r"HRconv.\1"),
    ])


def to_basicsr_edsr(state: Tensors, num_blocks: int) -> Tensors:
    state = {k: v for k, v in state.items() if not k.startswith(("sub_mean.", "add_mean."))}
    return rename(state, [
        (r"head\.0\.(\w+)", r"conv_first.\1"),
        (r"body\.(\d+)\.body\.0\.(\w+)", r"body.\1.conv1.\2"),
        (r"body\.(\d+)\.body\.2\.(\w+)", r"body.\1.conv2.\2"),
        (rf"body\.{num_blocks}\.(\w+)", r"conv_after_body.\1"),
        (r"tail\.0\.(\d+)\.(\w+)", r"upsample.\1.\2"),
        (r"tail\.1\.(\w+)", r"conv_last.\1"),
    ])


def basicsr_wrapped(state: Tensors) -> dict[str, Tensors]:
    """BasicSR file: EMA weights under params_ema, other weights under params, DataParallel prefix."""
    other = {f"module.{k}": v + 1.0 if v.is_floating_point() else v for k, v in state.items()}
    return {"params_ema": {f"module.{k}": v for k, v in state.items()}, "params": other}


def save(obj: Any, path: Path) -> Path:
    torch.save(obj, path)
    return path


def assert_same(original: nn.Module, loaded: nn.Module, config: dict[str, Any], size: int = 8) -> None:
    for key, value in config.items():
        want = list(value) if isinstance(value, tuple) else value
        assert loaded.config[key] == want, key
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        if getattr(original, "architecture", "") == "mdsr":
            for scale in config["scales"]:
                assert torch.allclose(original(x, scale), loaded(x, scale), atol=1e-5)
            return
        expected, got = original(x), loaded(x)
    assert expected.shape == got.shape
    assert torch.allclose(expected, got, atol=1e-5)


def check_load(path: Path, name: str, original: nn.Module, config: dict[str, Any], size: int = 8) -> nn.Module:
    loaded = load_model(path)
    assert loaded.architecture == name
    assert_same(original, loaded, config, size)
    return loaded


# --------------------------------------------------------------------------------------------
# native layouts (bare state_dict saved with torch.save)
# --------------------------------------------------------------------------------------------

NATIVE = [
    ("edsr", {"scale": 2, "num_blocks": 2, "num_features": 8, "res_scale": 1.0}),
    ("edsr", {"scale": 3, "num_blocks": 1, "num_features": 8}),
    ("edsr", {"scale": 4, "num_blocks": 2, "num_features": 8}),
    ("mdsr", {"scales": (2, 3, 4), "num_blocks": 2, "num_features": 8}),
    ("mdsr", {"scales": (4, 2), "num_blocks": 1, "num_features": 8}),
    ("srresnet", {"scale": 4, "num_blocks": 2, "num_features": 8}),
    ("srresnet", {"scale": 3, "num_blocks": 1, "num_features": 8}),
    ("msrresnet", {"scale": 2, "num_blocks": 2, "num_features": 8}),
    ("msrresnet", {"scale": 3, "num_blocks": 1, "num_features": 8}),
    ("msrresnet", {"scale": 4, "num_blocks": 2, "num_features": 8}),
    ("esrgan", {"scale": 4, "num_blocks": 2, "num_features": 16, "growth": 8, "unshuffle": 1}),
    ("dsgan", {"num_blocks": 2, "num_features": 8}),
    ("srvgg", {"scale": 4, "num_convs": 3, "num_features": 8}),
    ("srvgg", {"scale": 2, "num_convs": 0, "num_features": 8}),
]


@pytest.mark.parametrize(("name", "config"), NATIVE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(NATIVE)])
def test_native_state_dict(tmp_path: Path, name: str, config: dict[str, Any]) -> None:
    model = tiny(name, **config)
    path = save(plain_state(model), tmp_path / "native.pth")
    check_load(path, name, model, config)


def test_detect_layout_returns_native_names() -> None:
    model = tiny("esrgan", scale=2, num_blocks=1, num_features=8, growth=8)
    name, config, converted = detect_layout(plain_state(model))
    assert name == "esrgan" and config["scale"] == 2 and config["num_blocks"] == 1 and config["growth"] == 8
    assert set(converted) == set(model.state_dict())


# --------------------------------------------------------------------------------------------
# RRDBNet: ESRGAN old/new, BasicSR / Real-ESRGAN
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 4])
def test_esrgan_old_layout(tmp_path: Path, scale: int) -> None:
    config = {"scale": scale, "num_blocks": 2, "num_features": 16, "growth": 8}
    model = tiny("esrgan", **config)
    state = to_esrgan_old(plain_state(model), 2, {2: 1, 4: 2}[scale])
    assert "model.1.sub.0.RDB1.conv1.0.weight" in state and "model.1.sub.2.weight" in state
    if scale == 4:
        assert {"model.3.weight", "model.6.weight", "model.8.weight", "model.10.weight"} <= set(state)
    check_load(save(state, tmp_path / "old.pth"), "esrgan", model, config)


def test_esrgan_new_layout(tmp_path: Path) -> None:
    config = {"scale": 4, "num_blocks": 2, "num_features": 16, "growth": 8}
    model = tiny("esrgan", **config)
    state = to_esrgan_new(plain_state(model))
    assert {"RRDB_trunk.1.RDB3.conv5.weight", "trunk_conv.weight", "upconv2.bias", "HRconv.weight"} <= set(state)
    check_load(save(state, tmp_path / "new.pth"), "esrgan", model, config)


@pytest.mark.parametrize(("scale", "unshuffle", "in_ch", "size"), [(4, 1, 3, 6), (2, 2, 12, 8), (1, 4, 48, 8)])
def test_basicsr_rrdbnet_wrapped(tmp_path: Path, scale: int, unshuffle: int, in_ch: int, size: int) -> None:
    config = {"scale": scale, "num_blocks": 2, "num_features": 16, "growth": 8, "unshuffle": unshuffle}
    model = tiny("esrgan", **config)
    state = plain_state(model)
    assert state["conv_first.weight"].shape[1] == in_ch
    path = save(basicsr_wrapped(state), tmp_path / "RealESRGAN.pth")
    check_load(path, "esrgan", model, config, size)


def test_realesrgan_x2plus_has_two_upconvs(tmp_path: Path) -> None:
    model = tiny("esrgan", scale=2, num_blocks=1, num_features=8, growth=8, unshuffle=2)
    state = plain_state(model)
    assert "conv_up2.weight" in state and "conv_up3.weight" not in state
    loaded = load_model(save({"params_ema": state}, tmp_path / "x2plus.pth"))
    assert loaded.config["scale"] == 2 and loaded.config["unshuffle"] == 2


# --------------------------------------------------------------------------------------------
# EDSR-PyTorch EDSR / MDSR, BasicSR EDSR
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_pytorch_without_mean_keys(tmp_path: Path, scale: int) -> None:
    config = {"scale": scale, "num_blocks": 2, "num_features": 8, "res_scale": 1.0}
    model = tiny("edsr", **config)
    state = {k: v for k, v in plain_state(model).items() if not k.startswith(("sub_mean", "add_mean"))}
    check_load(save(state, tmp_path / "edsr_nomean.pt"), "edsr", model, config)


def test_edsr_pytorch_keeps_file_mean(tmp_path: Path) -> None:
    config = {"scale": 2, "num_blocks": 1, "num_features": 8}
    model = tiny("edsr", **config)
    with torch.no_grad():
        model.sub_mean.bias.copy_(torch.tensor([-100.0, -110.0, -120.0]))
        model.add_mean.bias.copy_(torch.tensor([100.0, 110.0, 120.0]))
    check_load(save(plain_state(model), tmp_path / "edsr.pt"), "edsr", model, config)


def test_edsr_paper_width_uses_res_scale_01(tmp_path: Path) -> None:
    config = {"scale": 2, "num_blocks": 1, "num_features": 256, "res_scale": 0.1}
    model = tiny("edsr", **config)
    check_load(save(plain_state(model), tmp_path / "edsr_paper.pt"), "edsr", model, config, size=4)


def test_edsr_pytorch_key_names(tmp_path: Path) -> None:
    state = plain_state(tiny("edsr", scale=3, num_blocks=2, num_features=8))
    assert state["tail.0.0.weight"].shape[0] == 72 and "body.2.weight" in state and "sub_mean.weight" in state
    state4 = plain_state(tiny("edsr", scale=4, num_blocks=1, num_features=8))
    assert "tail.0.2.weight" in state4
    mdsr = plain_state(tiny("mdsr", num_blocks=1, num_features=8))
    assert {"pre_process.2.0.body.0.weight", "upsample.0.0.weight", "upsample.2.2.weight", "tail.0.weight"} <= set(mdsr)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_basicsr_edsr(tmp_path: Path, scale: int) -> None:
    config = {"scale": scale, "num_blocks": 2, "num_features": 8, "res_scale": 1.0}
    model = tiny("edsr", **config)
    state = to_basicsr_edsr(plain_state(model), 2)
    assert "conv_after_body.weight" in state and "upsample.0.weight" in state and not any("mean" in k for k in state)
    check_load(save(basicsr_wrapped(state), tmp_path / "EDSR_Mx.pth"), "edsr", model, config)


# --------------------------------------------------------------------------------------------
# MSRResNet (BasicSR), DSGAN
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4])
def test_basicsr_msrresnet_wrapped(tmp_path: Path, scale: int) -> None:
    config = {"scale": scale, "num_blocks": 2, "num_features": 8}
    model = tiny("msrresnet", **config)
    path = save(basicsr_wrapped(plain_state(model)), tmp_path / "MSRResNet.pth")
    check_load(path, "msrresnet", model, config)


def test_dsgan_tar(tmp_path: Path) -> None:
    config = {"num_blocks": 2, "num_features": 8}
    model = tiny("dsgan", **config)
    discriminator = registry.build_discriminator("dsgan", num_features=4)
    generator = plain_state(model)
    checkpoint = {"epoch": 7, "model_g_state_dict": generator, "model_d_state_dict": discriminator.state_dict()}
    assert {"block_input.1.weight", "res_blocks.1.prelu.weight", "block_output.weight"} <= set(generator)
    check_load(save(checkpoint, tmp_path / "checkpoint_0007.tar"), "dsgan", model, config)


def test_srresnet_override_to_srgan(tmp_path: Path) -> None:
    model = tiny("srresnet", scale=2, num_blocks=1, num_features=8)
    loaded = load_model(save(plain_state(model), tmp_path / "srgan.pth"), architecture="srgan")
    assert loaded.config["scale"] == 2


# --------------------------------------------------------------------------------------------
# Real-ESRGAN compact (SRVGGNetCompact)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("scale", "num_convs", "wrapper"), [(4, 32, "params"), (4, 16, "params_ema"), (3, 2, "params"),
                                                             (1, 1, "params_ema")])
def test_srvgg_detected_from_names_and_shapes(tmp_path: Path, scale: int, num_convs: int, wrapper: str) -> None:
    """Conv count -> num_convs, first conv -> features, last conv's 3*s^2 outputs -> scale, PReLU -> activation."""
    config = {"scale": scale, "num_convs": num_convs, "num_features": 8, "activation": "prelu"}
    model = tiny("srvgg", **config)
    state = plain_state(model)
    assert f"body.{2 * num_convs + 2}.weight" in state and state["body.1.weight"].shape == (8,)
    path = save({wrapper: {f"module.{k}": v for k, v in state.items()}}, tmp_path / "realesr.pth")
    check_load(path, "srvgg", model, config)


def test_srvgg_without_prelu_is_refused_in_one_line(tmp_path: Path) -> None:
    """ReLU and LeakyReLU variants store no activation tensors: which one is unknowable, so no guess."""
    state = plain_state(tiny("srvgg", scale=2, num_convs=1, num_features=8, activation="relu"))
    assert "body.1.weight" not in state
    assert_one_line_error(save({"params": state}, tmp_path / "relu.pth"), must_mention="PReLU")


def test_srvgg_with_a_last_conv_that_is_no_pixel_shuffle_is_refused(tmp_path: Path) -> None:
    state = plain_state(tiny("srvgg", scale=2, num_convs=1, num_features=8))
    state["body.4.weight"], state["body.4.bias"] = torch.zeros(10, 8, 3, 3), torch.zeros(10)
    assert_one_line_error(save({"params": state}, tmp_path / "odd.pth"), must_mention="scale")


# --------------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------------

def assert_one_line_error(path: Path, must_mention: str = "supported") -> None:
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message and message
    assert must_mention in message


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(bytes(range(256)) * 7)
    assert_one_line_error(path)


def test_torch_file_with_a_list(tmp_path: Path) -> None:
    assert_one_line_error(save([torch.zeros(2), torch.ones(3)], tmp_path / "list.pth"))


def test_unknown_keys(tmp_path: Path) -> None:
    state = {"encoder.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(3)}
    assert detect_layout(state) is None
    assert_one_line_error(save(state, tmp_path / "unknown.pth"))


def test_recognised_layout_with_extra_key(tmp_path: Path) -> None:
    state = plain_state(tiny("msrresnet", scale=2, num_blocks=1, num_features=8))
    state["body.0.conv3.weight"] = torch.zeros(8, 8, 3, 3)
    assert_one_line_error(save(state, tmp_path / "extra.pth"))


def test_recognised_layout_with_missing_key(tmp_path: Path) -> None:
    state = to_esrgan_new(plain_state(tiny("esrgan", scale=4, num_blocks=1, num_features=8, growth=8)))
    del state["HRconv.weight"]
    assert_one_line_error(save(state, tmp_path / "missing.pth"))


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(plain_state(tiny("dsgan", num_blocks=1, num_features=8)), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(path, must_mention="safetensors")


def test_one_read_gives_tensors_metadata_and_the_hash_of_the_same_bytes(tmp_path: Path) -> None:
    """``--init`` records the sha256 of the weights it trained from; it must be the hash of the
    bytes whose tensors were loaded, for srcli files and foreign torch files alike."""
    model = tiny("edsr", scale=2, num_blocks=1, num_features=8)
    safetensors_path = save_model(model, tmp_path / "edsr.safetensors", extra={"recipe": {"iterations": 7}})
    torch_path = tmp_path / "edsr.pth"
    torch.save({"params": plain_state(model)}, torch_path)
    for path in (safetensors_path, torch_path):
        loaded = read_checkpoint_file(path)
        assert loaded.sha256 == sha256_of(path)
        assert set(loaded.tensors) == set(model.state_dict())
        assert all(torch.equal(loaded.tensors[key], value) for key, value in model.state_dict().items())
    assert json.loads(read_checkpoint_file(safetensors_path).metadata["recipe"]) == {"iterations": 7}
    assert read_checkpoint_file(torch_path).metadata == {}


def test_mapped_reads_agree_with_whole_file_reads_in_every_format(tmp_path: Path) -> None:
    """Plain loads memory-map the file; the 2018 ESRGAN releases are pre-zip torch files,
    which cannot be mapped and must still load, to the very same tensors."""
    model = tiny("edsr", scale=2, num_blocks=1, num_features=8)
    paths = [save_model(model, tmp_path / "edsr.safetensors", extra={"recipe": {"iterations": 3}})]
    paths.append(tmp_path / "zip.pth")
    torch.save(plain_state(model), paths[-1])
    paths.append(tmp_path / "legacy.pth")
    torch.save(plain_state(model), paths[-1], _use_new_zipfile_serialization=False)
    for path in paths:
        mapped, metadata = read_state_dict(path)
        whole = read_checkpoint_file(path)
        assert set(mapped) == set(whole.tensors) == set(model.state_dict())
        assert all(torch.equal(mapped[key], whole.tensors[key]) for key in mapped)
        assert metadata == whole.metadata
    assert json.loads(read_state_dict(paths[0])[1]["recipe"]) == {"iterations": 3}


def test_truncated_torch_zip_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(plain_state(tiny("edsr", scale=2, num_blocks=1, num_features=8)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(path)


def test_long_torch_messages_are_cut_between_words() -> None:
    from srcli.checkpoints.io import shorten

    message = "Missing key(s) in state_dict: " + ", ".join(f'"body.{i}.weight"' for i in range(80))
    short = shorten(message, 160)
    assert len(short) <= 164 and short.endswith(" ...")
    assert message.startswith(short[:-4])
    assert short[:-4].endswith('"') or short[:-4].endswith("weight")  # whole words only
    assert shorten("short message", 160) == "short message"
