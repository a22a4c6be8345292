"""PEFT LoRA adapters as per-sample low-rank shifts: one mixed batch, with autograd.

Load adapters saved by PEFT (``save_pretrained`` directories or state dicts) onto the base model,
run or train a batch where every sample names its adapter (or none) in one forward pass, and save
them back in PEFT's format; write any low-rank shifts (a hypernetwork's output for chosen rows)
as PEFT adapter directories. PEFT itself is not needed to load or save (``safetensors`` is);
``import weditlib`` never imports this module. Install the ``peft`` extra:
``pip install -e ".[peft]"`` in a clone (``pip install 'weditlib[peft]'`` once weditlib is on PyPI).
"""

from weditlib.peft.adapters import BASE, LoraAdapter, LoraAdapters
from weditlib.peft.config import LoraSettings
from weditlib.peft.export import AdapterExport, export_adapter, export_adapters

__all__ = [
    "BASE",
    "AdapterExport",
    "LoraAdapter",
    "LoraAdapters",
    "LoraSettings",
    "export_adapter",
    "export_adapters",
]
