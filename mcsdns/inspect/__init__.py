"""Looking at a zone instead of serving it: ``mcsdns zone`` (the zone as
RFC 1035 text) and ``mcsdns explain`` (which objects made an answer, and why a
name has none). Beside the app, over the same source, store and engine, so
what they print is what ``serve`` would answer."""
