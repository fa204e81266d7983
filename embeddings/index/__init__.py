"""Vector indexes and what is computed on them: the on-disk store (``store``) and its approximate
HNSW search (``approximate``), the one service that gets or builds any model's index
(``service``), image maps (``maps``), label-free re-ranking (``rerank``), retrieval evaluation
(``evaluation``) and before/after comparison (``compare``)."""
