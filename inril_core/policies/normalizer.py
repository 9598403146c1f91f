"""Per-dimension min/max scaling to [-1, 1].

The diffusion policy works in a normalised space because its x0 prediction is clipped to [-1, 1] and its noise
schedule assumes data of unit scale; robot actions and observations have arbitrary units, so they are mapped here.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)

# Dimensions whose range is below this are treated as constant: dividing by their (tiny) range would blow up
# float noise into huge normalised values, so they are only shifted to 0 instead.
_CONSTANT_RANGE = 1e-6


class MinMaxNormalizer:
    """Maps each dimension of the data's [min, max] onto [-1, 1] (constant dimensions onto 0).

    Statistics are kept as float32 torch tensors so that `state_dict()` can be saved next to the network weights
    (e.g. in a safetensors file); `normalize`/`unnormalize` accept numpy arrays or torch tensors of shape (..., D)
    and return the same kind, dtype and device. Values outside the fitted range are not clipped: clipping would
    hide out-of-distribution observations from the policy and make `unnormalize` lossy.
    """

    def __init__(self) -> None:
        self._center: torch.Tensor | None = None
        self._half_range: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        """Number of dimensions the normalizer was fitted on."""
        return int(self._fitted()[0].shape[0])

    def fit(self, data: np.ndarray | torch.Tensor) -> MinMaxNormalizer:
        """Computes per-dimension min/max over the rows of `data`, of shape (N, D) with N >= 1; returns self."""
        array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"MinMaxNormalizer.fit expects an array of shape (N, D) with N, D >= 1, got {array.shape}")
        array = array.astype(np.float64)
        bad = ~np.isfinite(array)
        if bad.any():
            columns = sorted(set(np.nonzero(bad)[1].tolist()))
            raise ValueError(
                f"MinMaxNormalizer.fit got {int(bad.sum())} NaN/Inf values (in dimensions {columns}); "
                "clean the data first"
            )
        low, high = array.min(axis=0), array.max(axis=0)
        half_range = (high - low) / 2.0
        self._center = torch.as_tensor((high + low) / 2.0, dtype=torch.float32)
        self._half_range = torch.as_tensor(np.where(half_range < _CONSTANT_RANGE, 1.0, half_range), dtype=torch.float32)
        return self

    def normalize(self, x: ArrayLike) -> ArrayLike:
        """Raw units -> [-1, 1]: (x - center) / half_range."""
        center, half_range = self._params_like(x)
        return (x - center) / half_range

    def unnormalize(self, x: ArrayLike) -> ArrayLike:
        """[-1, 1] -> raw units: x * half_range + center (exact inverse of `normalize`)."""
        center, half_range = self._params_like(x)
        return x * half_range + center

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors (center, half_range), so callers can prefix the keys and save them with the weights."""
        center, half_range = self._fitted()
        return {"center": center.clone(), "half_range": half_range.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores the statistics written by `state_dict()`."""
        if set(state) != {"center", "half_range"}:
            raise KeyError(f"MinMaxNormalizer state needs keys ['center', 'half_range'], got {sorted(state)}")
        center = torch.as_tensor(state["center"], dtype=torch.float32).detach().cpu()
        half_range = torch.as_tensor(state["half_range"], dtype=torch.float32).detach().cpu()
        if center.ndim != 1 or center.shape != half_range.shape:
            raise ValueError(
                f"MinMaxNormalizer state needs center and half_range of the same shape (D,), "
                f"got {tuple(center.shape)} and {tuple(half_range.shape)}"
            )
        if not bool((half_range > 0).all()):
            raise ValueError("MinMaxNormalizer state has a non-positive half_range")
        self._center, self._half_range = center.clone(), half_range.clone()

    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._center is None or self._half_range is None:
            raise RuntimeError("MinMaxNormalizer is not fitted: call fit() or load_state_dict() first")
        return self._center, self._half_range

    def _params_like(self, x: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        """The statistics in the same library, dtype and device as `x`, after checking its last dimension."""
        center, half_range = self._fitted()
        if x.shape[-1:] != center.shape:
            raise ValueError(f"expected data of shape (..., {center.shape[0]}), got {tuple(x.shape)}")
        if isinstance(x, torch.Tensor):
            return center.to(device=x.device, dtype=x.dtype), half_range.to(device=x.device, dtype=x.dtype)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        return center.numpy().astype(dtype), half_range.numpy().astype(dtype)


class ObservationNormalizer(MinMaxNormalizer):
    """Min/max scaling after putting each quaternion of the observation on one hemisphere.

    q and -q are the same rotation, and envs pick the sign by a convention such as FurnitureBench's w >= 0: a hand
    pointing down has w close to 0, so its observed quaternion jumps between q and -q as it wobbles (13 jumps in
    an average one_leg demo). A network sees two far-apart inputs for one state. Here each quaternion slot (its
    start index, 4 numbers) is flipped, where needed, to the side of the slot's mean rotation axis fitted on the
    data (the dominant eigenvector of the sum of q q^T, which does not depend on the signs), so the input moves
    continuously unless the rotation turns more than 90 degrees away from that mean. The reference quaternions are
    saved with the statistics, so a policy server applies exactly what training did."""

    def __init__(self, quaternion_starts: list[int] | tuple[int, ...] = ()) -> None:
        super().__init__()
        self.quaternion_starts = tuple(int(s) for s in quaternion_starts)
        self._references: torch.Tensor | None = None

    def fit(self, data: np.ndarray | torch.Tensor) -> ObservationNormalizer:
        array = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data, dtype=np.float64)
        if self.quaternion_starts:
            if array.ndim != 2 or max(self.quaternion_starts) + 4 > array.shape[1]:
                raise ValueError(f"quaternions at {list(self.quaternion_starts)} do not fit observations of shape "
                                 f"{array.shape}")
            references = []
            for start in self.quaternion_starts:
                quats = array[:, start:start + 4].astype(np.float64)
                _, vectors = np.linalg.eigh(quats.T @ quats)
                references.append(vectors[:, -1])
            self._references = torch.as_tensor(np.array(references), dtype=torch.float32)
        super().fit(self.align(array))
        return self

    def align(self, x: ArrayLike) -> ArrayLike:
        """``x`` with every configured quaternion on its reference's hemisphere (a copy; ``x`` is left alone)."""
        if not self.quaternion_starts:
            return x
        if self._references is None:
            raise RuntimeError("ObservationNormalizer is not fitted: call fit() or load_state_dict() first")
        out = x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)
        for start, reference in zip(self.quaternion_starts, self._references):
            ref = reference.to(device=x.device, dtype=x.dtype) if isinstance(x, torch.Tensor) else \
                reference.numpy().astype(out.dtype)
            quats = out[..., start:start + 4]
            flip = (quats * ref).sum(-1, keepdims=True) < 0 if not isinstance(x, torch.Tensor) else \
                (quats * ref).sum(-1, keepdim=True) < 0
            out[..., start:start + 4] = quats * (1 - 2 * flip)
        return out

    def normalize(self, x: ArrayLike) -> ArrayLike:
        return super().normalize(self.align(x))

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self.quaternion_starts:
            state["quaternion_references"] = self._references.clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        references = state.pop("quaternion_references", None)
        if (references is None) != (not self.quaternion_starts):
            raise KeyError(f"observation normaliser state {'lacks' if references is None else 'has'} quaternion "
                           f"references, but the policy has quaternions at {list(self.quaternion_starts)}")
        super().load_state_dict(state)
        if references is not None:
            references = torch.as_tensor(references, dtype=torch.float32).detach().cpu()
            if references.shape != (len(self.quaternion_starts), 4):
                raise ValueError(f"quaternion references of shape {tuple(references.shape)}, expected "
                                 f"({len(self.quaternion_starts)}, 4)")
            self._references = references.clone()


class ActionNormalizer(MinMaxNormalizer):
    """Min/max scaling of actions whose delta quaternions are put on w >= 0 before they are normalised.

    A delta-pose action (FurnitureBench's) holds a delta quaternion, and q and -q rotate the same. FurnitureBench's
    scripted expert emits either sign (23% of its one_leg actions have w < 0, e.g. a 0.3 rad turn as w = -0.96),
    so demos give a network two far-apart targets for one motion: it learns their mean, near w = 0, which the env
    normalises into a half-turn. Canonical w >= 0 (the short way round) leaves one target per rotation. The
    statistics are fitted on the actions as they are, so a range fitted from the action space's bounds stays
    whole; only ``normalize`` (the training targets) canonicalises, and ``unnormalize`` needs nothing: any sign is a
    valid command."""

    def __init__(self, quaternion_starts: list[int] | tuple[int, ...] = ()) -> None:
        super().__init__()
        self.quaternion_starts = tuple(int(s) for s in quaternion_starts)

    def canonical(self, x: ArrayLike) -> ArrayLike:
        """``x`` with every configured delta quaternion on w >= 0 (a copy when one is configured)."""
        if not self.quaternion_starts:
            return x
        out = x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)
        for start in self.quaternion_starts:
            flip = out[..., start + 3:start + 4] < 0
            out[..., start:start + 4] = out[..., start:start + 4] * (1 - 2 * flip)
        return out

    def normalize(self, x: ArrayLike) -> ArrayLike:
        return super().normalize(self.canonical(x))
