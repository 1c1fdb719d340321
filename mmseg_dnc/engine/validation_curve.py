"""A hook that keeps every validation's metrics with the iteration it ran at."""
from typing import Optional

from mmengine.hooks import Hook


class ValidationCurve(Hook):
    """Records every validation: ``curve`` is a list of ``dict(iter=..., **metrics)``,
    the metrics as floats, in the order they ran."""

    def __init__(self):
        self.curve = []

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self.curve.append(dict(iter=runner.iter, **{k: float(v) for k, v in
                                                    (metrics or {}).items()}))
