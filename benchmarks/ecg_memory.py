"""Peak memory of ConvRNN inference over 5, 15 and 30 minutes of a MIT-BIH record.

Each measurement runs in a fresh subprocess (``ru_maxrss`` is a process-lifetime peak):
load a trained raw-signal bundle, read record 100 (MLII), keep its first N minutes,
preprocess it with the bundle's own featurizer (resample, band-pass, per-record scaling),
then predict once with :meth:`ConvRNN.chunked_forward` (chunks of ``--chunk-seconds``) and,
for comparison, once with a single full pass. The peak after loading and preprocessing
(before any inference) is reported too, so that what inference adds is visible; with
chunking it must not grow with the record length beyond the signal itself.

    nice -n 10 .venv/bin/python benchmarks/ecg_memory.py BUNDLE_DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch
    torch.set_num_threads(1)
    from medseq.bundle import load_bundle
    from medseq.paths import dataset_dir
    from medseq.sources import wfdb_records
    bundle_dir, mode = sys.argv[1], sys.argv[3]
    minutes, chunk_s = float(sys.argv[2]), float(sys.argv[4])
    bundle = load_bundle(bundle_dir)
    model, featurizer = bundle.members[0].eval(), bundle.featurizer
    folder = dataset_dir("mitdb_full")
    signal = wfdb_records.read_record(folder, "100", annotator=None, channels=[0])
    n = int(minutes * 60 * signal.fs_hz)
    signal = type(signal)(signal.record_id, signal.samples[:n], signal.fs_hz,
                          signal.channel_names, signal.units)
    x = torch.as_tensor(featurizer.preprocess(signal))[None]
    kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = kib()
    start = time.perf_counter()
    with torch.no_grad():
        if mode == "chunked":
            stride = model.config.total_stride
            chunk = max(stride, round(chunk_s * featurizer.target_fs_hz / stride) * stride)
            logits = model.chunked_forward(x, chunk_samples=chunk)
        else:
            logits = model(x, torch.tensor([x.shape[1]]))
    print(json.dumps({"minutes": minutes, "mode": mode, "samples": int(x.shape[1]),
                      "signal_mib": round(x.numel() * 4 / 2**20, 2),
                      "maxrss_before_mib": round(before / 1024, 1),
                      "maxrss_mib": round(kib() / 1024, 1),
                      "seconds": round(time.perf_counter() - start, 2),
                      "probabilities": torch.softmax(logits, -1)[0].tolist()}))
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="bundle of a raw-signal ConvRNN (SignalFeaturizer)")
    parser.add_argument("--minutes", type=float, nargs="*", default=[5.0, 15.0, 30.0])
    parser.add_argument("--chunk-seconds", type=float, default=60.0)
    parser.add_argument("--modes", nargs="*", default=["chunked", "full"])
    args = parser.parse_args()
    for mode in args.modes:
        for minutes in args.minutes:
            out = subprocess.run(
                [sys.executable, "-c", PROBE, args.bundle, str(minutes), mode,
                 str(args.chunk_seconds)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
