"""Measuring networks: PSNR/SSIM as the SR literature reports them, benchmark datasets and their layouts, `srcli eval` and `srcli compare`."""
