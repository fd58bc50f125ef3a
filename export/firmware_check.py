"""Firmware vs simulator (vs host C): the same clips through the firmware on QEMU, the bundle's
integer simulator and, optionally, the generated C compiled for the host, compared integer
for integer (issue 8's must-shows).

A firmware build made from a checkpoint or bundle keeps the generated model folder (with the
copy of the bundle the C was made from, ``bundle.npz``) in ``BUILD/generated_model``; a build
made from a generated folder (``kws-export generate``) points at that folder in its
manifest. The simulator reads only that bundle (the contract), so the check needs neither
the checkpoint nor torch.

    from export.firmware_check import check_firmware
    chk = check_firmware(Path("OUT"), [Path("clips/")], host=True)
    assert chk.logits_equal and chk.host_equal

Logits are the model's int8 logits; a label is what ``kws_run`` returns: the first maximum of
the classifier's fine int32 grid ``logits_fine`` (the simulator's ``label``; it breaks ties of
the int8 logits, docs/QUANTIZATION.md "The label").
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from export.codegen import BUNDLE_COPY as _BUNDLE_COPY
from export.firmware import (DEFAULT_TIMEOUT, FirmwareError, collect_clips, read_manifest,
                             run_firmware)



@dataclass
class FirmwareCheck:
    """Per-clip integers of the three routes for one firmware build.

    Attributes:
        build_dir: the firmware build; board: its board name.
        names: clip paths as run; truth: label folder of each clip (Speech Commands
            layout) or None.
        labels: the model's class names (index order).
        firmware_logits, simulator_logits: int8 (n, n_classes).
        host_logits: int8 (n, n_classes) of the generated C on the host (UBSan), or None
            when not asked for.
        firmware_label_index: int (n,) the label ``kws_run`` returned on the board.
        simulator_label_index: int (n,) the simulator's ``label`` of each clip.
        instructions: int64 (n,) executed by ``kws_run`` per clip on QEMU (exact).
        seconds: wall seconds of each route, keys "qemu", "simulator", "host".
    """

    build_dir: Path
    board: str
    names: list[str]
    truth: list[str | None]
    labels: list[str]
    firmware_logits: np.ndarray
    simulator_logits: np.ndarray
    host_logits: np.ndarray | None
    firmware_label_index: np.ndarray
    simulator_label_index: np.ndarray
    instructions: np.ndarray
    seconds: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of clips."""
        return len(self.names)

    @property
    def firmware_labels(self) -> np.ndarray:
        """int (n,) the label index the firmware's ``kws_run`` returned."""
        return self.firmware_label_index

    @property
    def simulator_labels(self) -> np.ndarray:
        """int (n,) the simulator's label (argmax of its int32 ``logits_fine``)."""
        return self.simulator_label_index

    @property
    def logit_mismatches(self) -> int:
        """Clips whose firmware logits differ from the simulator's in any class."""
        return int(np.any(self.firmware_logits != self.simulator_logits, axis=1).sum())

    @property
    def prediction_mismatches(self) -> int:
        """Clips whose firmware label differs from the simulator's."""
        return int((self.firmware_labels != self.simulator_labels).sum())

    @property
    def host_mismatches(self) -> int | None:
        """Clips whose host-C logits differ from the firmware's (None without host C)."""
        if self.host_logits is None:
            return None
        return int(np.any(self.host_logits != self.firmware_logits, axis=1).sum())

    @property
    def logits_equal(self) -> bool:
        """Firmware logits equal the simulator's on every clip."""
        return self.logit_mismatches == 0

    @property
    def host_equal(self) -> bool | None:
        """Host-C logits equal the firmware's on every clip (None without host C)."""
        m = self.host_mismatches
        return None if m is None else m == 0

    def accuracy(self, route: str = "firmware") -> float | None:
        """Fraction of labelled clips whose ``route`` ("firmware"|"simulator") label is the
        truth, or None without labelled clips."""
        pred = self.firmware_labels if route == "firmware" else self.simulator_labels
        pairs = [(self.labels[int(p)], t) for p, t in zip(pred, self.truth) if t is not None]
        return sum(p == t for p, t in pairs) / len(pairs) if pairs else None

    def first_mismatch(self) -> str | None:
        """One line naming the first clip where firmware and simulator logits differ."""
        bad = np.flatnonzero(np.any(self.firmware_logits != self.simulator_logits, axis=1))
        if not len(bad):
            return None
        i = int(bad[0])
        return (f"clip {i + 1} ({self.names[i]}): firmware "
                f"{','.join(map(str, self.firmware_logits[i]))} != simulator "
                f"{','.join(map(str, self.simulator_logits[i]))}")


def generated_folder_of_build(build_dir: Path) -> Path:
    """The generated model folder (with its ``bundle.npz``) a firmware build was made from.

    Args:
        build_dir: a ``kws-export build`` output folder.
    Returns:
        ``build_dir/generated_model`` (built from a checkpoint or bundle) or the model folder
        named in the manifest (built from a ``kws-export generate`` folder).
    Raises:
        FirmwareError: not a build folder, or its model has no bundle (the stand-in model,
            hand-written C, or the float32 C baseline, which has no int8 simulator twin).
    """
    build_dir = Path(build_dir)
    manifest = read_manifest(build_dir)
    if manifest.get("model", {}).get("precision") == "float32":
        raise FirmwareError(f"{build_dir}: a float32 C build; only int8 builds have a "
                            f"simulator twin")
    for folder in (build_dir / "generated_model", Path(manifest["model"].get("source", ""))):
        if folder.is_dir() and (folder / _BUNDLE_COPY).is_file():
            return folder
    raise FirmwareError(f"{build_dir}: its model has no bundle ({_BUNDLE_COPY}); build from a "
                        f"checkpoint, a bundle or a kws-export generate folder to compare "
                        f"with the simulator")


def simulate_clips(bundle, samples: np.ndarray, *, batch: int = 64,
                   progress: bool = False) -> np.ndarray:
    """int8 logits of the bundle's integer simulator (``export.simulator.Simulator``).

    Args:
        bundle: a loaded :class:`export.bundle.Bundle`.
        samples: int16 (n, 16000) PCM.
        batch: clips per simulator call (memory ~ batch x 0.2 MB).
        progress: tqdm bar over the batches.
    Returns:
        (int8 (n, n_classes) logits, int64 (n,) labels: the simulator's ``label``).
    Raises:
        SimulatorError: samples not int16 (n, 16000).
    """
    from export.simulator import Simulator
    sim = Simulator(bundle)
    starts = range(0, len(samples), batch)
    if progress and len(samples) > batch:
        from tqdm import tqdm
        starts = tqdm(starts, unit="batch", desc="simulator", leave=False,
                      disable=None)         # None: a bar on a terminal only
    out = [sim.run(samples[i:i + batch], keep=["logits", "label"], frontend_intermediates=False)
           for i in starts]
    return (np.concatenate([o["logits"] for o in out]).astype(np.int8),
            np.concatenate([o["label"].reshape(-1) for o in out]).astype(np.int64))


def host_c_clips(folder: Path, samples: np.ndarray, *, sanitize: bool = True) -> np.ndarray:
    """int8 logits of the generated C compiled for the host (``export.verify.build_host``:
    strict flags, UBSan unless ``sanitize`` is False), all clips in one process.

    Args:
        folder: a generated model folder; samples: int16 (n, 16000).
    Returns:
        int8 (n, n_classes) logits of ``kws_run``.
    Raises:
        ToolError: no host compiler; VerifyError: the driver failed (UBSan report).
    """
    from export.verify import build_host, run_host
    with tempfile.TemporaryDirectory(prefix="kws-host-") as tmp:
        hb = build_host(folder, Path(tmp) / "build", taps=False, sanitize=sanitize)
        return run_host(hb, samples, Path(tmp) / "run")["logits"].astype(np.int8)


def check_firmware(build_dir: Path, inputs: Sequence[Path], *, host: bool = False,
                   timeout: float = DEFAULT_TIMEOUT, progress: bool = False,
                   simulator_logits: np.ndarray | None = None,
                   simulator_labels: np.ndarray | None = None) -> FirmwareCheck:
    """Run clips through the firmware (one QEMU boot), the simulator and optionally the host C.

    Args:
        build_dir: int8 build of an emulated board, made from a checkpoint, bundle or
            generated folder.
        inputs: a list of clips and folders, as ``kws-export run`` takes them (a single
            str/Path is refused: write ``[path]``).
        host: also compile and run the generated C on the host.
        timeout: QEMU silence timeout (seconds, > 0).
        progress: progress bars (QEMU clips, simulator batches).
        simulator_logits: int8 (n, n_classes) from an earlier :func:`simulate_clips` of
            the same bundle and clips (e.g. the same model built for several boards);
            None runs the simulator.
        simulator_labels: int (n,) the labels of that same :func:`simulate_clips` run
            (required with ``simulator_logits``).
    Returns:
        :class:`FirmwareCheck` (compare with its properties; nothing is asserted here).
    Raises:
        TypeError: ``inputs`` not a list of paths (e.g. a single str/Path), ``timeout`` not
        a number; ValueError: ``timeout`` <= 0 (both before any work).
        FirmwareError (not a build / no bundle / QEMU failure, fault, hang), BoardError,
        ToolError, AudioError, VerifyError (host C).
    """
    from export.codegen import load_folder_bundle
    from export.fileio import path_list
    from export.firmware import check_timeout
    from nanomamba.audio import load_audio
    inputs = path_list(inputs)
    timeout = check_timeout(timeout)
    build_dir = Path(build_dir)
    folder = generated_folder_of_build(build_dir)
    bundle = load_folder_bundle(folder)
    t0 = time.monotonic()
    res = run_firmware(build_dir, inputs, timeout=timeout, progress=progress)
    seconds = {"qemu": time.monotonic() - t0}
    clips = collect_clips(inputs)
    n_samples = int(read_manifest(build_dir)["model"]["samples"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # run_firmware already reported alterations
        samples = np.stack([load_audio(p, dtype="int16", n_samples=n_samples)
                            for p, _ in clips])
    if simulator_logits is None:
        t0 = time.monotonic()
        sim, sim_lab = simulate_clips(bundle, samples, progress=progress)
        seconds["simulator"] = time.monotonic() - t0
    else:
        sim = np.asarray(simulator_logits, dtype=np.int8)
        if sim.shape[0] != len(samples):
            raise FirmwareError(f"simulator_logits: {sim.shape[0]} rows for "
                                f"{len(samples)} clips")
        if simulator_labels is None or len(simulator_labels) != len(samples):
            raise FirmwareError(f"simulator_labels: one label per clip ({len(samples)}) is "
                                f"needed with simulator_logits")
        sim_lab = np.asarray(simulator_labels, dtype=np.int64)
    hostl = None
    if host:
        t0 = time.monotonic()
        hostl = host_c_clips(folder, samples)
        seconds["host"] = time.monotonic() - t0
    return FirmwareCheck(
        build_dir=build_dir, board=res.board, names=[c.path for c in res.clips],
        truth=[c.truth for c in res.clips], labels=list(res.labels),
        firmware_logits=np.array([c.logits for c in res.clips], dtype=np.int8),
        simulator_logits=sim, host_logits=hostl,
        firmware_label_index=np.array([c.label_index for c in res.clips], dtype=np.int64),
        simulator_label_index=sim_lab,
        instructions=np.array([c.instructions for c in res.clips], dtype=np.int64),
        seconds=seconds)
