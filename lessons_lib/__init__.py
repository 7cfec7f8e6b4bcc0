"""LoRA Adapter Lab: the support library behind the course notebooks (imports stay light here)."""
__version__ = "0.1.0"
