"""Compiled parts of the runtime: the C99 mask decoding core (``es_*.c``) and its binding.

Built by ``pip install`` (see ``setup.py``). When the extension could not be
built (no compiler on the board), :mod:`edgeseg.decode` uses the numpy
reference instead; nothing here is imported directly by user code.
"""
