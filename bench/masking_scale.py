"""How masking scales with hostile input, measured side by side in one run.

Masking runs on every task before any model: its cost must grow with the size of the input, not
with its square. Three inputs, each at a base size and at 10x that size:
- one long word without "@" (the email recognizer used to try every start to the end: quadratic);
- many sensitive values against many notes (all values in one trie pattern, not one alternative
  each tried at every position);
- a typical contact (the cost per request the routing_overhead bench also sees).

A linear cost gives ratios near 10 for the first two. Last line: worst=<largest 10x ratio>.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from core.policy import Privacy
from core.privacy import Masker

MASKER = Masker(Privacy())


def best_of(fn: Callable[[], Any], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def long_word(n: int) -> dict[str, Any]:
    return {"email": "ann@example.com", "notes": "a" * n + " " + "7" * n}


def many_values(n: int) -> dict[str, Any]:
    rng = random.Random(n)
    people = [{"first_name": "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou")
                                     for _ in range(3)).title(),
               "last_name": "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou")
                                    for _ in range(4)).title()} for _ in range(n)]
    notes = [f"{p['first_name']} met {people[(i + 7) % n]['last_name']} about the order {i}"
             for i, p in enumerate(people)]
    return {"first_name": "Ann", "household": people, "notes": notes}


TYPICAL = {"first_name": "Maya", "last_name": "Lindqvist", "email": "maya@example.net",
           "phone": "+1 415 555 0142", "company": "Fjord & Field", "city": "Portland",
           "notes": "Maya asked to be called at +1 415 555 0142 about card 4111 1111 1111 1111"}


def main() -> None:
    ratios = []
    for name, make, base in (("long word", long_word, 10_000), ("many values", many_values, 80)):
        small, large = make(base), make(base * 10)
        t_small = best_of(lambda c=small: MASKER.mask(c, "Thank them"))  # type: ignore[misc]
        t_large = best_of(lambda c=large: MASKER.mask(c, "Thank them"))  # type: ignore[misc]
        ratios.append(t_large / t_small)
        print(f"{name}: {base} -> {base * 10}: {t_small * 1000:.1f} ms -> {t_large * 1000:.1f} ms "
              f"(x{t_large / t_small:.1f} for 10x the input)")
    typical = best_of(lambda: MASKER.mask(TYPICAL, "Thank Maya for the backpack."), runs=50)
    print(f"typical contact: {typical * 1000:.3f} ms")
    print(f"worst={max(ratios):.1f}")


if __name__ == "__main__":
    main()
