"""Keyword data: the Speech Commands V2 loader, the offline espeak-ng generator and noise.

- :mod:`nanomamba.data.speech_commands`: Google Speech Commands V2 folders (and the simpler
  one-folder-per-label layout) as 12-class int16 clip arrays.
- :mod:`nanomamba.data.synth`: keyword, unknown-word and silence clips synthesised offline
  with espeak-ng (deterministic for a seed, cached).
- :mod:`nanomamba.data.noise`: recorded and generated noise, mixing at an SNR.

Importing this package does not import torch.
"""
