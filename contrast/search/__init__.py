"""After training: embed a collection (:mod:`contrast.search.embed`), index it
(:mod:`contrast.search.index`) and search it (:mod:`contrast.search.serve`)."""
