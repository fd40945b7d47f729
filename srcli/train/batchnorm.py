"""Recompute BatchNorm statistics of a trained generator ("precise BN").

Why: the trainer keeps an EMA of the weights but copies BN running statistics from the live
network, and those are themselves an exponential average (momentum 0.1) over the last few
batches of *other* weights. The shipped EMA network therefore runs with statistics that belong
to neither it nor any one network. Averaging the statistics exactly, over many batches that the
EMA weights themselves produce, removes the mismatch without training. Only networks with BN
(SRResNet, SRGAN's generator) have anything to recompute.
"""
from __future__ import annotations

import itertools
from typing import Iterable

import torch
from torch import nn

_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [module for module in model.modules() if isinstance(module, _BATCHNORM)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BN layer's running mean/variance to their exact average over ``batches``.

    The rest of the network stays in eval mode (nothing else may change), and each layer's
    momentum is restored afterwards. Returns the number of batches used; raises ``ValueError``
    (before touching the model) when it has no BN layer or no batch is given, so a request
    cannot silently do nothing.
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layers to recalibrate")
    remaining = iter(batches)
    first = next(remaining, None)
    if first is None:  # checked before the statistics are reset, so the model stays usable
        raise ValueError("no batches to recalibrate BatchNorm with")
    was_training = model.training
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average: every batch weighs the same
        layer.train()
    count = 0
    try:
        for batch in itertools.chain([first], remaining):
            model(batch)
            count += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return count
