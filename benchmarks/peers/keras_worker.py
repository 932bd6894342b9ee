"""Keras 3 (TensorFlow CPU) training throughput on the exported PhysioNet 2012 tensors.

Runs inside ``benchmarks/.peer-venvs/keras`` (no medseq there). For each hidden size and
cell: ``Sequential([Input((T, 3F)), LSTM|GRU(H), Dense(1)])`` on ``[values; mask; delta]``,
Adam, binary cross-entropy on logits, trained with ``model.fit`` (Keras's compiled train
step, its fastest path); the per-batch time comes from a callback. Prints one JSON line per
configuration. Usage: ``python keras_worker.py TENSORS --threads N --hidden 64,128,256``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit.tensors import load_tensors
from benchkit.timing import cpu_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tensors", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", default="64,128,256")
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--jit", default="auto", help="Keras jit_compile: auto, true or false")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    arrays = load_tensors(args.tensors)
    x = np.concatenate([arrays["values"], arrays["mask"], arrays["delta"]], axis=2)
    y = arrays["y"]
    jit = {"auto": "auto", "true": True, "false": False}[args.jit]

    class StepTimes(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    for cell in args.cells.split(","):
        for hidden in (int(h) for h in args.hidden.split(",")):
            keras.utils.set_random_seed(0)
            layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
            model = keras.Sequential(
                [keras.Input(x.shape[1:]), layer(hidden), keras.layers.Dense(1)]
            )
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.BinaryCrossentropy(from_logits=True),
                jit_compile=jit,
            )
            timer = StepTimes()
            timer.times = []
            warm = 3 * args.batch  # traces and compiles the train step
            model.fit(x[:warm], y[:warm], batch_size=args.batch, epochs=1, verbose=0,
                      shuffle=False, callbacks=[timer])  # fmt: skip
            per_step = statistics.median(timer.times)
            n_steps = int(min(args.max_steps, max(5, args.min_seconds / per_step)))
            n_steps = min(n_steps, len(y) // args.batch)
            timer.times = []
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            model.fit(x[: n_steps * args.batch], y[: n_steps * args.batch],
                      batch_size=args.batch, epochs=1, verbose=0, shuffle=False,
                      callbacks=[timer])  # fmt: skip
            cpu_per_wall = (cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
            median = statistics.median(timer.times)
            print(json.dumps({
                "lib": "keras", "model": cell, "hidden": hidden, "threads": args.threads,
                "steps": len(timer.times), "median_step_s": median,
                "samples_per_s": args.batch / median, "jit_compile": str(jit),
                "cpu_per_wall": cpu_per_wall,
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
