"""Common random numbers.

Every random draw is keyed by what it is *for* -- (seed, instance, block, scope path, variable)
-- never by the order in which the simulator processes events. Two runs with the same seed
under different policies or architectures therefore see the same workload.

Keys are 64-bit integers built by hashing, so a draw costs a few integer operations:

* an instance's root key is ``mix(seed key + (instance + 1) * golden)``;
* a foreach copy or loop iteration ``j`` of block ``b`` under key ``k`` has the key
  ``mix((k ^ salt(b)) + (j + 1) * golden)``, where ``salt`` is a 64-bit BLAKE2b digest of
  a fixed text naming the block (computed once, when the flow is compiled);
* a draw of quantity ``what`` (cycles, a count, a variable...) at block ``b`` in a frame
  of key ``k`` starts a SplitMix64 stream at ``mix(k ^ salt(b, what))``.

``mix`` is SplitMix64's finaliser, a bijection of 64-bit integers with full avalanche. A
stream yields as many uniforms as a sampler needs (rejection samplers, ...).
"""

from __future__ import annotations

from hashlib import blake2b

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
TWO_M53 = 2.0**-53


def mix64(z: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit integers with full avalanche."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def salt(text: str) -> int:
    """A fixed 64-bit constant naming a block or a quantity (computed at compile time)."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "little")


def first_uniform(state: int) -> float:
    """The first uniform of ``Stream(state)``, without building the stream."""
    z = (state + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return (((z ^ (z >> 31)) >> 11) + 0.5) * TWO_M53


class Stream:
    """A deterministic stream of uniforms in the open interval (0, 1)."""

    __slots__ = ("_state",)

    def __init__(self, state: int) -> None:
        self._state = state

    def uniform(self) -> float:
        s = (self._state + GOLDEN) & MASK64
        self._state = s
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        return ((z >> 11) + 0.5) * TWO_M53


class KeyedRandom:
    """Draw keys for one seed."""

    __slots__ = ("seed", "seed_key")

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.seed_key = mix64(salt(f"octosim seed {self.seed}"))

    def instance_key(self, instance: int) -> int:
        """The root key of one workflow instance."""
        return mix64((self.seed_key + (instance + 1) * GOLDEN) & MASK64)

    @staticmethod
    def child_key(key: int, block_salt: int, j: int) -> int:
        """The key of copy / iteration ``j`` of a block under ``key``."""
        return mix64(((key ^ block_salt) + (j + 1) * GOLDEN) & MASK64)

    def at(self, key: int) -> int:
        """The stream state of the draw keyed ``key`` (a frame key XOR a quantity's salt):
        ``mix64(key)``. Every draw of a run passes here, so a test can watch the keys."""
        z = ((key ^ (key >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def stream(self, key: str) -> Stream:
        """A stream for a textual key (tests and one-off draws such as arrival gaps)."""
        return Stream(mix64(self.seed_key ^ salt(key)))

    def uniform(self, key: str) -> float:
        return self.stream(key).uniform()


# --- the same keys for many draws at once (the workload compiler) -----------------------------

_U64_C1 = np.uint64(0xBF58476D1CE4E5B9)
_U64_C2 = np.uint64(0x94D049BB133111EB)
_U64_GOLDEN = np.uint64(GOLDEN)
_U64_30, _U64_27, _U64_31, _U64_11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def mix64_array(z: np.ndarray) -> np.ndarray:
    """:func:`mix64` of each element of a ``uint64`` array (numpy wraps modulo 2**64)."""
    z = (z ^ (z >> _U64_30)) * _U64_C1
    z = (z ^ (z >> _U64_27)) * _U64_C2
    return z ^ (z >> _U64_31)


def first_uniform_array(states: np.ndarray) -> np.ndarray:
    """:func:`first_uniform` of each stream state, as ``float64``."""
    z = mix64_array(states + _U64_GOLDEN)
    return ((z >> _U64_11).astype(np.float64) + 0.5) * TWO_M53


def instance_keys_array(rnd: KeyedRandom, ids: np.ndarray) -> np.ndarray:
    """:meth:`KeyedRandom.instance_key` of each instance id."""
    return mix64_array(np.uint64(rnd.seed_key) + (ids.astype(np.uint64) + np.uint64(1))
                       * _U64_GOLDEN)


def child_keys_array(keys: np.ndarray, block_salt: int, j: np.ndarray | int) -> np.ndarray:
    """:meth:`KeyedRandom.child_key` of copy / iteration ``j[i]`` (or ``j`` for all) under
    ``keys[i]``."""
    if isinstance(j, np.ndarray):
        return mix64_array((keys ^ np.uint64(block_salt))
                           + (j.astype(np.uint64) + np.uint64(1)) * _U64_GOLDEN)
    # One iteration for all: the same sum modulo 2**64, formed once.
    return mix64_array((keys ^ np.uint64(block_salt)) + np.uint64(((j + 1) * GOLDEN) & MASK64))
