"""Deployment stages after the float model: quantization to a bundle, the bit-exact integer
simulator, ONNX/TFLite exporters, C code generation and firmware build/run/flash.

Data flow: checkpoint -> float model (``nanomamba``) -> quantized bundle
(``export.quantize`` / ``export.bundle``) -> simulator (``export.simulator``) -> C code
(``export.codegen``) -> firmware (``export.firmware``) -> board.
"""

__version__ = "0.1.0"
