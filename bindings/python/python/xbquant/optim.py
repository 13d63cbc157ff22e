"""QPyTorch's low-precision optimizer wrapper, ``OptimLP``: quantizes the gradients (after
scaling), the weights, the optimizer's momentum buffers and, optionally, full-precision weight
accumulators, around each step of an SGD or Adam optimizer."""

from __future__ import annotations

from typing import Callable, Optional

import torch

__all__ = ["OptimLP"]

Quant = Optional[Callable[[torch.Tensor], torch.Tensor]]


class OptimLP(torch.optim.Optimizer):
    """Wraps ``optim`` (``torch.optim.SGD`` or ``Adam``) with QPyTorch's semantics:

    1. each gradient becomes ``grad_quant(grad * grad_scaling)`` (only when ``grad_quant`` is
       given, as in QPyTorch; the scaled gradient is what the optimizer sees);
    2. with ``acc_quant``, the step runs on a full-precision copy of the weights (the
       accumulators), which is then quantized with ``acc_quant`` and kept for the next step;
    3. after the step, weights become ``weight_quant(weights)``;
    4. the momentum buffers (SGD's ``momentum_buffer`` when momentum is on, Adam's ``exp_avg``
       and ``exp_avg_sq``) become ``momentum_quant(buffer)``.

    The quantizers are functions from tensor to tensor, such as those of
    :func:`xbquant.quantizer` or ``lambda x: xbquant.fixed_point_quantize(x, 8, 6)``. Unlike
    QPyTorch's, ``step(closure)`` passes the closure on to the optimizer.

    Example::

        >>> import torch, xbquant
        >>> w = torch.nn.Parameter(torch.tensor([0.3, -0.6]))
        >>> sgd = torch.optim.SGD([w], lr=0.5)
        >>> opt = OptimLP(sgd, weight_quant=lambda x: xbquant.fixed_point_quantize(x, 8, 2, rounding="nearest"))
        >>> w.grad = torch.tensor([0.1, 0.1]); opt.step()
        >>> w.data
        tensor([ 0.2500, -0.7500])
    """

    def __init__(
        self,
        optim: torch.optim.Optimizer,
        weight_quant: Quant = None,
        grad_scaling: float = 1.0,
        grad_quant: Quant = None,
        momentum_quant: Quant = None,
        acc_quant: Quant = None,
    ):
        if isinstance(optim, torch.optim.SGD):
            self.momentum_keys = ["momentum_buffer"]
        elif isinstance(optim, torch.optim.Adam):
            self.momentum_keys = ["exp_avg", "exp_avg_sq"]
        else:
            raise TypeError(f"OptimLP wraps torch.optim.SGD or torch.optim.Adam, got {type(optim).__name__}")
        if not grad_scaling > 0:
            raise ValueError(f"grad_scaling must be positive, got {grad_scaling}")
        # Share the wrapped optimizer's groups and state: this object is a view of it.
        super().__init__(optim.param_groups, optim.defaults)
        self.param_groups = optim.param_groups
        self.state = optim.state
        self.optim = optim
        self.grad_scaling = grad_scaling
        self.weight_quant = weight_quant
        self.grad_quant = grad_quant
        self.momentum_quant = momentum_quant
        self.acc_quant = acc_quant
        self.weight_acc = {}
        if acc_quant is not None:
            for p in self._params():
                self.weight_acc[p] = p.detach().clone()

    def __getstate__(self):
        # torch's Optimizer pickles only its defaults, state and groups: keep the wrapped
        # optimizer, the quantizers and the accumulators too.
        return dict(self.__dict__)

    def state_dict(self):
        """The wrapped optimizer's state, with the full-precision weight accumulators (in the
        order of the parameters) when ``acc_quant`` keeps them."""
        state = self.optim.state_dict()
        if self.acc_quant is not None:
            state["weight_acc"] = [self.weight_acc[p].clone() for p in self._params()]
        return state

    def load_state_dict(self, state_dict):
        """Restores what :meth:`state_dict` gave."""
        state = dict(state_dict)
        accumulators = state.pop("weight_acc", None)
        self.optim.load_state_dict(state)
        self.param_groups = self.optim.param_groups
        self.state = self.optim.state
        if accumulators is not None:
            params = list(self._params())
            if len(accumulators) != len(params):
                raise ValueError(f"weight_acc holds {len(accumulators)} tensors for {len(params)} parameters")
            for p, acc in zip(params, accumulators):
                self.weight_acc[p] = acc.detach().clone().to(p.device)

    def _params(self):
        for group in self.param_groups:
            yield from group["params"]

    @torch.no_grad()
    def step(self, closure=None):
        """One step of the wrapped optimizer, with the quantizations above."""
        if self.grad_quant is not None:
            for p in self._params():
                if p.grad is not None:
                    p.grad.data = self.grad_quant(p.grad.data * self.grad_scaling)
        if self.acc_quant is not None:
            for p in self._params():
                p.data = self.weight_acc[p].data
        loss = self.optim.step(closure) if closure is not None else self.optim.step()
        if self.acc_quant is not None:
            for p in self._params():
                p.data = self.weight_acc[p].data = self.acc_quant(p.data).data
        if self.weight_quant is not None:
            for p in self._params():
                p.data = self.weight_quant(p.data).data
        if self.momentum_quant is not None:
            for group in self.param_groups:
                if isinstance(self.optim, torch.optim.SGD) and group["momentum"] == 0:
                    continue
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.optim.state[p]
                    for key in self.momentum_keys:
                        if key in state:
                            state[key] = self.momentum_quant(state[key])
        return loss

    def zero_grad(self, set_to_none: bool = True):
        self.optim.zero_grad(set_to_none=set_to_none)

    def __repr__(self) -> str:
        return f"LP Optimizer: {self.optim!r}"
