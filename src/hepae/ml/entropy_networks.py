"""Training the networks of a learned entropy model (torch): a location and a log-scale per object, on code length.

What they are trained for: the bits of the quantized residuals under a discretized logistic distribution
whose location and scale the two networks give (the negative log-likelihood of the integer steps, not a
squared error). Both are one hidden ReLU layer; :mod:`hepae.entropy_models` maps them to the integer
networks the codec runs (:class:`hepae.codecs.learned.IntegerNetwork`).
"""

from __future__ import annotations

import math

import numpy as np
import torch


class _Network(torch.nn.Module):
    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(inputs, hidden)
        self.out = torch.nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))[:, 0]


def code_length_bits(target: torch.Tensor, location: torch.Tensor, log2_scale: torch.Tensor,
                     width: float) -> torch.Tensor:
    """Bits of each ``target`` (a multiple of ``width``) under the logistic distribution of that location and
    scale, integrated over its bin of ``width``."""
    scale = torch.exp2(log2_scale.clamp(-30.0, 30.0))
    upper = torch.sigmoid((target - location + width / 2) / scale)
    lower = torch.sigmoid((target - location - width / 2) / scale)
    return -torch.log2((upper - lower).clamp_min(1e-12))


def fit_networks(location_inputs: np.ndarray, scale_inputs: np.ndarray, target: np.ndarray, width: float, *,
                 period: float | None = None, hidden: int = 16, iterations: int = 400,
                 seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """The float weights of a location and a log2-scale network fitted on ``target`` (residuals in units, bins
    of ``width``) with Adam; returns ``{"location": {...}, "scale": {...}}`` with ``w1 (hidden, inputs)``,
    ``b1``, ``w2 (hidden,)`` and ``b2 (1,)``.

    With ``period``, the difference between target and location is taken modulo ``period`` (into
    ``[-period / 2, period / 2)``), as the codec does when it codes a column's steps modulo their range: an
    angle is then predicted by a location that need not jump where the angle wraps around."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x_location = torch.from_numpy(np.ascontiguousarray(location_inputs, np.float32))
    x_scale = torch.from_numpy(np.ascontiguousarray(scale_inputs, np.float32))
    y = torch.from_numpy(np.ascontiguousarray(target, np.float32))
    location, scale = _Network(x_location.shape[1], hidden), _Network(x_scale.shape[1], hidden)
    with torch.no_grad():  # start from no shift and the residuals' spread
        location.out.weight.zero_()
        location.out.bias.zero_()
        spread = float(torch.quantile(y.abs(), 0.5)) if len(y) else 1.0
        scale.out.weight.mul_(0.1)
        scale.out.bias.fill_(math.log2(max(spread, width) / 1.1))
    parameters = [*location.parameters(), *scale.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    batch = min(len(y), 16_384)
    for _ in range(iterations):
        rows = torch.randint(0, len(y), (batch,), generator=generator) if batch < len(y) else slice(None)
        difference = y[rows] - location(x_location[rows])
        if period:
            difference = torch.remainder(difference + period / 2, period) - period / 2
        loss = code_length_bits(difference, torch.zeros(()), scale(x_scale[rows]), width).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()

    def weights(network: _Network) -> dict[str, np.ndarray]:
        return {"w1": network.hidden.weight.detach().numpy().astype(np.float64),
                "b1": network.hidden.bias.detach().numpy().astype(np.float64),
                "w2": network.out.weight.detach().numpy()[0].astype(np.float64),
                "b2": network.out.bias.detach().numpy().astype(np.float64)}

    return {"location": weights(location), "scale": weights(scale)}


__all__ = ["code_length_bits", "fit_networks"]
