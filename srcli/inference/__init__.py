"""The inference core: the tiled upscaler, receptive fields and tile-overlap calibration, device and precision choice, dihedral transforms for self-ensemble."""
