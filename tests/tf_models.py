"""Real .tflite models made by TensorFlow's converter (the [tf] extra), for what the corpus lacks:

- `dynamic.tflite`: an audio front end with input `audio` of shape [-1, -1] (conv over 400
  samples, stride 160): at the stored [1, 1] LiteRT fails ("XNNPack delegate failed to
  reshape"); it runs at [1, 1280].
- `cond.tflite`: an IF op (tf.cond in a tf.function) with its two branches: 3 subgraphs.
  `cond_argnames.tflite` is the same model with its branches' tensors named `arg0`, `arg1`...
  as older converters named them (the names ai-edge-quantizer refuses: "Tensor name arg0 is
  not unique in the model"), everything else unchanged.
- `while.tflite`: a WHILE op (tf.while_loop), 3 subgraphs.

Built once in a subprocess (TensorFlow takes ~30 s to import) into
`~/.cache/edge-bench-test/tf-models/<hash of the script>/`; without TensorFlow `build()`
skips the calling test (fails it under CI: conftest.missing_system).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

SCRIPT = r'''
import os, re, sys
import numpy as np
import tensorflow as tf
out = sys.argv[1]
rng = np.random.default_rng(0)
k = tf.constant(rng.normal(0, 0.05, size=(400, 1, 8)).astype(np.float32))
wk = tf.constant(rng.normal(0, 0.3, size=(8, 4)).astype(np.float32))
w0 = tf.constant(rng.normal(0, 0.2, size=(32, 64)).astype(np.float32))
w1 = tf.constant(rng.normal(0, 0.2, size=(64, 64)).astype(np.float32))
w2 = tf.constant(rng.normal(0, 0.2, size=(64, 64)).astype(np.float32))

def save(module, name):
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module)
    with open(os.path.join(out, name), "wb") as f:
        f.write(conv.convert())

class Audio(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")])
    def __call__(self, audio):
        x = tf.nn.relu(tf.nn.conv1d(tf.expand_dims(audio, -1), k, stride=160, padding="VALID"))
        return {"scores": tf.nn.softmax(tf.matmul(tf.reduce_mean(x, axis=1), wk))}

class Cond(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 32], tf.float32, name="x")])
    def __call__(self, x):
        h = tf.nn.relu(tf.matmul(x, w0))
        return {"y": tf.cond(tf.reduce_mean(x) > 0, lambda: tf.nn.relu(tf.matmul(h, w1)),
                             lambda: tf.tanh(tf.matmul(h, w2)))}

class While(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 32], tf.float32, name="x")])
    def __call__(self, x):
        h = tf.nn.relu(tf.matmul(x, w0))
        _, h = tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w1))),
                             [tf.constant(0), h])
        return {"y": h}

save(Audio(), "dynamic.tflite")
save(Cond(), "cond.tflite")
save(While(), "while.tflite")

# the branches' tensors named as older converters named them: arg0, arg1, ...
from ai_edge_litert import schema_py_generated as schema
import flatbuffers
data = open(os.path.join(out, "cond.tflite"), "rb").read()
model = schema.ModelT.InitFromPackedBuf(data, 0)
for sg in model.subgraphs[1:]:
    for t in sg.tensors:
        t.name = re.sub(r"^cond_(true|false)_\d+_", "", t.name.decode())
fbb = flatbuffers.Builder(1024)
fbb.Finish(model.Pack(fbb), file_identifier=b"TFL3")
open(os.path.join(out, "cond_argnames.tflite"), "wb").write(bytes(fbb.Output()))
'''

CACHE = Path(os.environ.get("EDGE_BENCH_TEST_CACHE", Path.home() / ".cache" / "edge-bench-test")
             ) / "tf-models"
NAMES = ("dynamic.tflite", "cond.tflite", "cond_argnames.tflite", "while.tflite")


def build() -> Dict[str, Path]:
    """{name: path} of the models above, built once (pytest.skip without TensorFlow)."""
    if importlib.util.find_spec("tensorflow") is None:
        from conftest import missing_system
        missing_system("TensorFlow is not installed (pip install 'edge-bench[tf]')")
    out = CACHE / hashlib.sha256(SCRIPT.encode()).hexdigest()[:16]
    if not all((out / n).is_file() for n in NAMES):
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp)], capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        try:
            tmp.rename(out)
        except OSError:   # another test worker built them first
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return {n: out / n for n in NAMES}
