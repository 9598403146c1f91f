"""The IN-RIL schedule: after every m RL optimiser steps, one IL injection (paper-notes §1.2–1.3).

One "RL update" is one optimiser step of the RL algorithm on one minibatch (DESIGN.md §3); m = inf is RL-only.
The schedule sits outside the RL algorithm: the learner tells it about each RL step and asks whether an IL
injection is due. The adaptive variant (beyond the paper, whose Theorem 1 asks for m(t) from the IL/RL gradient
alignment rho(t) but never implements it) moves m between m_min and m_max from an EMA of the measured cosine:
aligned gradients (rho -> 1) allow frequent IL (m -> m_min); conflicting ones (rho -> -1) space it out (m -> m_max).
"""

from __future__ import annotations

import math


class InterleaveSchedule:
    def __init__(
        self, m: float, adaptive: bool = False, m_min: int = 2, m_max: int = 30, ema: float = 0.9
    ) -> None:
        if not (m >= 1):
            raise ValueError(f"interleave m must be >= 1 or inf, got {m}")
        self.m = m
        self.adaptive = adaptive and not math.isinf(m)
        self.m_min, self.m_max, self.ema = m_min, m_max, ema
        self.rl_steps = 0            # RL optimiser steps since the start of fine-tuning
        self.since_injection = 0     # RL steps since the last IL injection
        self.injections = 0
        self.rho_ema: float | None = None

    @property
    def enabled(self) -> bool:
        return not math.isinf(self.m)

    def on_rl_step(self) -> bool:
        """Count one RL optimiser step; True when an IL injection is due now."""
        self.rl_steps += 1
        if not self.enabled:
            return False
        self.since_injection += 1
        if self.since_injection >= self.current_m:
            self.since_injection = 0
            self.injections += 1
            return True
        return False

    @property
    def current_m(self) -> float:
        if not self.adaptive or self.rho_ema is None:
            return self.m
        fraction = (1.0 - self.rho_ema) / 2.0  # rho 1 -> 0, rho -1 -> 1
        return float(round(self.m_min + fraction * (self.m_max - self.m_min)))

    def observe_cosine(self, rho: float) -> None:
        """Feed the measured cosine(IL gradient, RL gradient) of an injection (used by the adaptive schedule)."""
        self.rho_ema = rho if self.rho_ema is None else self.ema * self.rho_ema + (1 - self.ema) * rho

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("rl_steps", "since_injection", "injections", "rho_ema")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
