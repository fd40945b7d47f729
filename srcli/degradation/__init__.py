"""Making LR images from HR ones: bicubic and a fixed classical chain, a learned DSGAN degradation, and the randomized realworld pipeline for photo models."""
