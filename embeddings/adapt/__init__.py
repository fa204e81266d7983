"""Adapted image models: projection heads on frozen vectors (``heads``, their math in ``fitting``),
fine-tuning a backbone (``finetune``, with its data in ``trainingdata`` and its run files in
``checkpoints``) and the model it produces (``finetuned``), and finding the saved ones (``saved``)."""
