"""Common random numbers.

Every random draw is keyed by what it is *for* -- (seed, instance, block, scope path, variable)
-- never by the order in which the simulator processes events. Two runs with the same seed
under different policies or architectures therefore see the same workload. A key is hashed
(BLAKE2b, keyed by the seed) into the state of a small SplitMix64 stream, so one key can
feed a sampler that needs several uniforms (rejection samplers, Box-Muller...).
"""

from __future__ import annotations

from hashlib import blake2b

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_TWO_M53 = 2.0**-53


class Stream:
    """A deterministic stream of uniforms in the open interval (0, 1)."""

    __slots__ = ("_state",)

    def __init__(self, state: int) -> None:
        self._state = state

    def uniform(self) -> float:
        s = (self._state + _GOLDEN) & _MASK
        self._state = s
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        z ^= z >> 31
        return ((z >> 11) + 0.5) * _TWO_M53


class KeyedRandom:
    """Factory of streams keyed by the meaning of a draw, for one seed."""

    __slots__ = ("seed", "_key", "_keyed")

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._key = (self.seed & _MASK).to_bytes(8, "little") + (
            (self.seed >> 64) & _MASK
        ).to_bytes(8, "little")
        # Copying a keyed hasher is cheaper than keying a new one; the digests are identical.
        self._keyed = blake2b(digest_size=8, key=self._key)

    def stream(self, key: str) -> Stream:
        h = self._keyed.copy()
        h.update(key.encode())
        return Stream(int.from_bytes(h.digest(), "little"))

    def uniform(self, key: str) -> float:
        return self.stream(key).uniform()
