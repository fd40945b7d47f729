"""Defaults shared by the CLI and the library, kept free of torch so ``--help`` stays fast."""
from __future__ import annotations

#: The model ``upscale``, ``eval`` and ``compare`` use when none is named: the photo-robust EDSR,
#: because the images people have are JPEGs from phones and the web, not bicubic downscales.
DEFAULT_MODEL = "edsr-photo"

#: Names that stand for the best shipped model of a kind: the first candidate that is installed.
#: The plain names are the photo-robust models; bicubic-trained ones keep explicit names.
ALIASES: dict[str, tuple[str, ...]] = {
    "esrgan": ("esrgan-photo", "esrgan-photo-psnr"),  # the GAN stage once shipped, its PSNR parent until then
    "esrgan-psnr": ("esrgan-photo-psnr",),
    "edsr-bicubic": ("edsr",),
}

#: (PSNR-oriented, GAN) pairs that ``--alpha`` and ``srcli interpolate`` blend, keyed by either name.
INTERPOLATION_PAIRS: dict[str, tuple[str, str]] = {
    "esrgan-photo": ("esrgan-photo-psnr", "esrgan-photo"),
    "esrgan-photo-psnr": ("esrgan-photo-psnr", "esrgan-photo"),
    "esrgan-bicubic": ("esrgan-bicubic-psnr", "esrgan-bicubic"),
    "esrgan-bicubic-psnr": ("esrgan-bicubic-psnr", "esrgan-bicubic"),
    "srgan": ("srresnet", "srgan"),
    "srresnet": ("srresnet", "srgan"),
}
