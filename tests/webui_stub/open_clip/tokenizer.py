"""Shim module: executes the REAL open_clip/tokenizer.py of open-clip-torch in this module's namespace, so
`open_clip.tokenizer._tokenizer` is its SimpleTokenizer (CLIP BPE vocabulary; BOS 49406, EOS 49407)."""

from __future__ import annotations

from _real_files import installed_file

_path = installed_file("open-clip-torch", "open_clip/tokenizer.py")
__file__ = str(_path)
exec(compile(_path.read_text(encoding="utf-8"), str(_path), "exec"))
