"""Measuring networks: PSNR/SSIM as the SR literature reports them, no-reference NIQE, benchmark datasets and their layouts, `srcli eval` and `srcli compare`."""
