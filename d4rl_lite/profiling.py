"""Finding host synchronisation in a training step.

``HostReadbacks`` records every op that makes the host wait for a tensor's value: ``.item()``,
``float(t)``, ``bool(t)`` (all ``_local_scalar_dense``), and ops whose output size depends on the
data (``nonzero``, ``masked_select``, boolean-mask indexing, ``unique``). On a GPU each one stalls
the stream until the queued kernels finish; on the CPU nothing stalls, but the same ops are
dispatched, so the check runs anywhere. The tests and ``benchmarks/step_profile.py`` use it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_consecutive",
                         "unique_dim", "equal", "is_nonzero", "_assert_async"})


class HostReadbacks(TorchDispatchMode):
    """Context manager; ``seen`` lists the syncing ops dispatched inside it, in order.

    Reads of an optimizer's step counter are left out when ``optimizers`` are given (checked as the
    block ends, so counters made inside it count too): torch's Adam (foreach, not capturable) keeps
    that counter on the host even for GPU weights and reads it with ``.item()``, which waits for no
    device."""

    def __init__(self, optimizers: Any = ()) -> None:
        super().__init__()
        self.seen: list[str] = []
        self._optimizers = list(optimizers)
        self._reads: list[tuple[str, Any]] = []

    def __exit__(self, *exc: Any) -> Any:
        counters = {id(state["step"]) for opt in self._optimizers for state in opt.state.values() if "step" in state}
        self.seen = [op for op, tensor in self._reads if id(tensor) not in counters]
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        op = func._schema.name.split("::")[-1]
        # x[mask] must count the mask's true entries before it can allocate its output.
        boolean_mask = op in ("index", "index_put", "index_put_") and len(args) > 1 and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or []))
        if op in SYNCING_OPS or boolean_mask:
            self._reads.append((str(func) + (" (boolean mask)" if boolean_mask else ""), args[0] if args else None))
            self.seen.append(self._reads[-1][0])
        return func(*args, **(kwargs or {}))
