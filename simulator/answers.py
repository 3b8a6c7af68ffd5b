"""How simulated residents answer check-ins: one seeded, pure decision shared by the call button
responder and the fake phone gateway.

The model is the one the evaluation fixes (issue 15): a resident who is fine answers the first attempt
within its wait with probability ``p_first`` (0.8); after an unanswered attempt, a later attempt is
answered with probability ``p_retry`` (0.5); a resident who is down never answers. An answer comes
``delay_s`` into the attempt (uniform, well inside the wait).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ResidentAnswers:
    p_first: float = 0.8
    p_retry: float = 0.5
    delay_s: tuple[float, float] = (5.0, 60.0)
    answer: str = "ok"
    # Households whose resident is down (fallen, unconscious): they never answer.
    down: frozenset[str] = field(default_factory=frozenset)
    seed: int = 0

    def decide(self, household_id: str, checkin_id: str, attempt: int) -> float | None:
        """Seconds into the attempt at which the resident answers, or None: no answer to this attempt."""
        if household_id in self.down:
            return None
        digest = hashlib.sha256(f"{self.seed}:{checkin_id}:{attempt}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        if rng.random() >= (self.p_first if attempt <= 1 else self.p_retry):
            return None
        return rng.uniform(*self.delay_s)
