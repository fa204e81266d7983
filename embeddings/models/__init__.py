"""One module per model family. Each imports only the base classes (:mod:`embeddings.text.base`,
:mod:`embeddings.image.base`) and the shared plumbing in :mod:`embeddings.core`; none imports
another model module or the registry (:mod:`embeddings.registry` names them by dotted path)."""
