"""The IN-RIL schedule: after every m RL optimiser steps, one IL injection (paper-notes §1.2–1.3).

One "RL update" is one optimiser step of the RL algorithm on one minibatch (DESIGN.md §3); m = inf is RL-only.
The schedule sits outside the RL algorithm: the learner tells it about each RL step and asks whether an IL
injection is due.

The adaptive variant is beyond the paper: its Theorem 1 says the best m(t) depends on the IL/RL gradient alignment
rho(t) (stronger conflict: more RL steps per IL step; stronger alignment: fewer), but every experiment used a fixed
m and rho was never measured. We measure rho at every injection (the cosine between the IL gradient and the latest
RL gradient) and set
    m(t) = m_min + (m_max - m_min) * (1 - tanh(rho_ema(t) / rho_scale)) / 2,
with rho_ema an exponential average of the measured rho (one injection's rho is a single noisy minibatch cosine).
- Aligned (rho_ema > 0): IL pulls where RL goes, so inject often (m -> m_min): imitation is then cheap help.
- Conflicting (rho_ema < 0): each IL step partly undoes RL's progress, so space injections out (m -> m_max): RL
  is the objective, IL only a regulariser.
- rho_scale: minibatch gradient cosines over ~10^5 parameters are small (measured |rho| mostly < 0.1-0.4, README),
  so the map is scaled to that spread; a linear map of [-1, 1] would leave m near the middle forever.
- Bounds [m_min, m_max] always hold (tested): m_min keeps RL the main objective, m_max keeps IL present.
"""

from __future__ import annotations

import math


class InterleaveSchedule:
    def __init__(
        self, m: float, adaptive: bool = False, m_min: int = 2, m_max: int = 30, ema: float = 0.9,
        rho_scale: float = 0.1,
    ) -> None:
        if not (m >= 1):
            raise ValueError(f"interleave m must be >= 1 or inf, got {m}")
        self.m = m
        self.adaptive = adaptive and not math.isinf(m)
        if adaptive and not (1 <= m_min <= m_max and rho_scale > 0 and 0 <= ema < 1):
            raise ValueError(f"adaptive m needs 1 <= m_min <= m_max, rho_scale > 0 and 0 <= ema < 1; got m_min "
                             f"{m_min}, m_max {m_max}, rho_scale {rho_scale}, ema {ema}")
        self.m_min, self.m_max, self.ema, self.rho_scale = m_min, m_max, ema, rho_scale
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
        fraction = (1.0 - math.tanh(self.rho_ema / self.rho_scale)) / 2.0  # aligned -> 0, conflicting -> 1
        return float(round(self.m_min + fraction * (self.m_max - self.m_min)))

    def observe_cosine(self, rho: float) -> None:
        """Feed the measured cosine(IL gradient, RL gradient) of an injection (used by the adaptive schedule)."""
        self.rho_ema = rho if self.rho_ema is None else self.ema * self.rho_ema + (1 - self.ema) * rho

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("rl_steps", "since_injection", "injections", "rho_ema")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
