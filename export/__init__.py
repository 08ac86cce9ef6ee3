"""edgeseg export pipeline (workstation side): PyTorch mask models -> verified bundles.

Needs the ``export`` extra (torch, onnx, onnxscript, litert-torch). The
on-device runtime (:mod:`edgeseg`) never imports this package.
"""
