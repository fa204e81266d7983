"""The image side: the image embedder interface and preprocessing (``base``), safe image decoding
(``io``), and collections: the entry points (``collections``), the collection type
(``collection``) and its sources (``sample``, ``cifar``, ``folders``)."""
