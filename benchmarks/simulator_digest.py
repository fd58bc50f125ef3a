"""Digest of every integer the simulator returns on the 1,200 real clips, to prove that a
change to the simulator's kernels (e.g. a speed-up) changes no output integer.

For each published model (Tiny, Small; default-calibration bundles of
``benchmarks/_published.py``) it runs ``Simulator.run`` on every clip of
``../shared/fixtures/speech_commands_test/`` (``keep=None``, front-end intermediates
included: the logits and every intermediate) in batches, and hashes each tensor's dtype,
shape and bytes (SHA-256, chained over the batches). Run it on two source trees and compare
the JSON files:

    python benchmarks/simulator_digest.py -o new.json
    python benchmarks/simulator_digest.py --src OLD_TREE -o old.json
    python benchmarks/simulator_digest.py --compare old.json new.json

``--src`` imports ``export`` / ``nanomamba`` from another checkout (e.g. ``git worktree`` or
``git archive`` of the commit before the change); the bundles are the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def digest(models, batch: int, cache: Path) -> dict:
    """{model: {tensor name: hex digest}} over all clips (see the module docstring)."""
    from tqdm import tqdm

    from _published import SHARED, published_bundle
    from export import quantize as Q
    from export.bundle import load_bundle
    from export.simulator import Simulator
    from nanomamba.errors import AudioWarning
    warnings.simplefilter("ignore", AudioWarning)
    audio, names = Q.load_clip_folder(SHARED / "speech_commands_test")
    out = {}
    for name in models:
        sim = Simulator(load_bundle(published_bundle(name, cache)))
        hs: dict[str, hashlib._Hash] = {}
        for s in tqdm(range(0, len(audio), batch), desc=name):
            res = sim.run(audio[s:s + batch])
            for k, v in res.items():
                h = hs.setdefault(k, hashlib.sha256())
                h.update(f"{v.dtype}{v.shape}".encode())
                h.update(v.tobytes())
        out[name] = {"clips": len(audio), **{k: h.hexdigest() for k, h in sorted(hs.items())}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT, help="source tree to import the simulator from")
    ap.add_argument("--models", nargs="+", default=["tiny", "small"])
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "bundles")
    ap.add_argument("-o", "--output", type=Path)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = ap.parse_args(argv)
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        bad = 0
        for m in sorted(set(a) | set(b)):
            ka, kb = a.get(m, {}), b.get(m, {})
            diff = sorted(k for k in set(ka) | set(kb) if ka.get(k) != kb.get(k))
            n = len(set(ka) & set(kb)) - 1
            print(f"{m}: {n} tensors compared on {ka.get('clips')} clips, "
                  f"{'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff)}")
            bad += len(diff)
        return 1 if bad else 0
    sys.path[:0] = [str(args.src.resolve()), str(ROOT / "benchmarks")]
    res = digest(args.models, args.batch, args.cache)
    text = json.dumps(res, indent=1)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
