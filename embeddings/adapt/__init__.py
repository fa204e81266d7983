"""Adapted image models: projection heads on frozen vectors (``heads``), fine-tuning a backbone
(``finetune``) and the model it produces (``finetuned``), and finding the saved ones (``saved``)."""
