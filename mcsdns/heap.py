"""The cyclic garbage collector around a zone of millions of records.

Records, endpoints and packed names hold no reference cycles; refcounting
frees them. But they are container objects, so the cyclic collector walks
all of them in every full collection, and while a large zone loads (a million
endpoints: parsed JSON, then records) full collections ran again and again,
each over everything loaded so far: 60% of the time of loading the 100k zone
went there (bench/RESULTS.md, "Zone scale and churn").

So: no cyclic collection while the first full sync loads; once the zone is
ready (or after ``LOAD_LIMIT`` seconds, whatever happens), everything alive
is moved to the permanent generation (``gc.freeze``: never walked again,
still freed by refcounting when replaced) and collection resumes, for the
garbage of the steady state, which then stays small and fast to walk.
"""

from __future__ import annotations

import gc

LOAD_LIMIT = 120.0  # seconds: a source that never syncs must not keep collection off


class LoadPhase:
    def __init__(self) -> None:
        self.active = False

    def begin(self) -> None:
        if gc.isenabled():
            gc.disable()
            self.active = True

    def end(self) -> None:
        """Idempotent: the first call freezes what the load built and resumes."""
        if self.active:
            self.active = False
            gc.freeze()
            gc.enable()


def settle() -> None:
    """Move what is alive now to the permanent generation, as after the load.

    For work that packs much of the zone at once (an AXFR packs every name
    not packed yet): those names live on in their entries, and without this
    each full collection walks all of them again, a pause of a second and
    more for a 500k-record zone, while queries wait. A young collection first,
    so fresh cyclic garbage is freed rather than frozen."""
    gc.collect(1)
    gc.freeze()
