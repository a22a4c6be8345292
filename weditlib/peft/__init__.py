"""PEFT LoRA adapters as per-sample low-rank shifts: one mixed batch, with autograd.

Load adapters saved by PEFT (``save_pretrained`` directories or state dicts) onto the base model,
run or train a batch where every sample names its adapter (or none) in one forward pass, and save
them back in PEFT's format. PEFT itself is not needed to load or save (``safetensors`` is);
``import weditlib`` never imports this module. Install the ``peft`` extra:
``pip install -e ".[peft]"`` in a clone (``pip install 'weditlib[peft]'`` once weditlib is on PyPI).
"""

from weditlib.peft.adapters import BASE, LoraAdapter, LoraAdapters
from weditlib.peft.config import LoraSettings

__all__ = ["BASE", "LoraAdapter", "LoraAdapters", "LoraSettings"]
