"""Shim for the open_clip package: only `open_clip.tokenizer` (the REAL open-clip-torch tokenizer.py, loaded by
path), which modules/sd_hijack_open_clip.py imports. The real __init__ needs torchvision and is never run."""
