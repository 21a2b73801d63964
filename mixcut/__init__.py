"""mixcut: image classification training built around batch-mixing augmentation."""

__version__ = "0.1.0"
