"""Cheap, stable seeding: every random choice is keyed by (seed, purpose, home, day, ...).

Seeding a Mersenne Twister costs about 5 µs and string seeds hash with SHA-512, which adds up over
100,000 homes a day. So per home-day code draws from one ``Random`` made with ``rng(...)``, and yes/no
questions that must be answered for arbitrary days (is a hospital stay starting on day d?) use
``unit(...)``, a SplitMix64 hash with no generator at all. Both are pure functions of integers and
give the same values on every platform and Python version (unlike ``hash()`` of a tuple).
"""

from __future__ import annotations

import random

_MASK = (1 << 64) - 1

# Purposes, so that the same (home, day) gives independent draws for different questions.
DAY = 1
WEEKEND = 2
HOSPITAL = 3
SWAP = 4


def _finalize(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def mix(*parts: int) -> int:
    """A 64-bit hash of the integer parts (SplitMix64 steps)."""
    h = 0
    for part in parts:
        h = _finalize((h + 0x9E3779B97F4A7C15 + (part & _MASK)) & _MASK)
    return h


def unit(*parts: int) -> float:
    """A uniform float in [0, 1) determined by the parts."""
    return (mix(*parts) >> 11) / float(1 << 53)


def rng(*parts: int) -> random.Random:
    """A generator seeded by the parts."""
    return random.Random(mix(*parts))
