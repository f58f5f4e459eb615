"""Calibration and eval data from a folder of ordinary images (JPEG/PNG).

`--calibration DIR` / `--eval DIR` take a folder of images as well as .npz/.npy. Each image is
read with Pillow, converted to RGB (or grayscale for a 1-channel input), resized to the input's
height x width (bilinear), laid out as the input wants (NHWC, or NCHW when the channel axis
comes first) and normalized:

1. by the flags, when given: `--input-range A,B` maps pixel values 0..255 linearly onto [A, B];
   `--mean M[,M,M]` / `--std S[,S,S]` compute (pixel - mean) / std on 0..255 (as TFLite
   metadata does);
2. else by the model's own TFLite metadata (the NormalizationOptions of the input's process
   units in the `TFLITE_METADATA` buffer, as MediaPipe and Model Maker models carry);
3. else it asks for the flags (one line): guessing [0, 1] or [-1, 1] would give a model data it
   never saw and silently spoil the calibration.

A uint8 input gets the pixels as they are; an int8 input the normalized values quantized with the
input's scale and zero point.

Labels (top-1) come from a folder per class (`DIR/cat/1.jpg`, `DIR/dog/2.png`) or a `labels.csv`
in the folder (`file,label` lines, the file relative to the folder). A label is a class index,
or a class name looked up in the model's label file (metadata TENSOR_AXIS_LABELS) when the
model has one, else in the sorted list of class folder names.

The loaded arrays are written once as a content-addressed .npz under
`$EDGE_BENCH_CACHE/images/<sha>/<folder name>.npz` (`x` for one input, `y` the labels), so the
rest of edge-bench (quantizer cache keys, pushing eval data to a device) works on it like on a
user's .npz.
"""
from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LABELS_CSV = "labels.csv"
#: at most this many images are read from a folder (calibration needs a few hundred at most)
MAX_IMAGES = 1000
#: bump when the way images become arrays changes (part of the cache name)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Normalization:
    """pixel (0..255) -> (pixel - mean) / std, per channel (one value: all channels)."""
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    source: str                     # "model metadata" or the flags given

    def apply(self, pixels: np.ndarray, channel_axis: int = -1) -> np.ndarray:
        shape = [1] * pixels.ndim
        shape[channel_axis] = -1
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        if len(mean) > 1:
            mean = mean.reshape(shape)
        if len(std) > 1:
            std = std.reshape(shape)
        return ((pixels.astype(np.float32) - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class ImageOptions:
    """The normalization flags (`--input-range`, `--mean`, `--std`) as the user typed them."""
    input_range: Optional[str] = None
    mean: Optional[str] = None
    std: Optional[str] = None

    def normalization(self) -> Optional[Normalization]:
        """The flags' normalization, None when none was given; UsageError for a bad value."""
        if self.input_range and (self.mean or self.std):
            raise UsageError("--input-range cannot be combined with --mean/--std",
                             hint="give one of them")
        if self.input_range:
            lo, hi = _floats("--input-range", self.input_range, 2, 2)
            if not hi > lo:
                raise UsageError(f"--input-range {self.input_range}: the upper bound must be"
                                 " above the lower", hint="e.g. --input-range 0,1 or -1,1")
            # x * (hi - lo) / 255 + lo == (x - mean) / std
            std = 255.0 / (hi - lo)
            return Normalization((-lo * std,), (std,), f"--input-range {self.input_range}")
        if self.mean or self.std:
            mean = _floats("--mean", self.mean or "0", 1, 3)
            std = _floats("--std", self.std or "1", 1, 3)
            if any(s == 0 for s in std):
                raise UsageError(f"--std {self.std}: a standard deviation of 0 divides by zero")
            return Normalization(mean, std, f"--mean {self.mean or 0} --std {self.std or 1}")
        return None

    def key(self) -> str:
        return f"{self.input_range}|{self.mean}|{self.std}"


def _floats(flag: str, text: str, lo: int, hi: int) -> Tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} {text}: not a comma-separated list of numbers",
                         hint=f"e.g. {flag} {'0,1' if lo == 2 else '127.5'}") from None
    if not lo <= len(vals) <= hi or not all(np.isfinite(vals)):
        raise UsageError(f"{flag} {text}: needs {lo if lo == hi else f'{lo} to {hi}'} finite"
                         " number(s)")
    return vals


# ---- the model's metadata (tflite_support's metadata_schema.fbs, read by hand) ------------------
def _table(buf: bytes, pos: int):
    from flatbuffers.table import Table
    return Table(bytearray(buf), pos)


def _field(tab, slot: int) -> int:
    return tab.Offset(4 + 2 * slot)


def _vector_tables(tab, slot: int) -> List[object]:
    o = _field(tab, slot)
    if not o:
        return []
    start, n = tab.Vector(o), tab.VectorLen(o)
    return [_table(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(n)]


def _floats_of(tab, slot: int) -> Tuple[float, ...]:
    import flatbuffers.number_types as nt
    o = _field(tab, slot)
    if not o:
        return ()
    start, n = tab.Vector(o), tab.VectorLen(o)
    return tuple(float(tab.Get(nt.Float32Flags, start + 4 * i)) for i in range(n))


def _string(tab, slot: int) -> str:
    o = _field(tab, slot)
    return tab.String(o + tab.Pos).decode("utf-8", "replace") if o else ""


def _metadata_buffer(model_bytes: bytes) -> Optional[bytes]:
    from ai_edge_litert import schema_py_generated as schema
    try:
        model = schema.Model.GetRootAs(model_bytes, 0)
        for i in range(model.MetadataLength()):
            md = model.Metadata(i)
            if md.Name() == b"TFLITE_METADATA":
                data = model.Buffers(md.Buffer()).DataAsNumpy()
                return bytes(data) if isinstance(data, np.ndarray) else None
    except Exception:  # noqa: BLE001 - a cut flatbuffer: no metadata (the model's own error later)
        return None
    return None


def _subgraph_metadata(model_bytes: bytes) -> Optional[object]:
    buf = _metadata_buffer(model_bytes)
    if not buf or len(buf) < 8:
        return None
    import flatbuffers.encode as enc
    import flatbuffers.number_types as nt
    root = _table(buf, enc.Get(nt.UOffsetTFlags.packer_type, buf, 0))
    subgraphs = _vector_tables(root, 3)           # ModelMetadata.subgraph_metadata
    return subgraphs[0] if subgraphs else None


def metadata_normalization(model_bytes: bytes, input_index: int = 0) -> Optional[Normalization]:
    """The NormalizationOptions of input `input_index` in the model's TFLite metadata, or None."""
    import flatbuffers.number_types as nt
    try:
        sub = _subgraph_metadata(model_bytes)
        if sub is None:
            return None
        inputs = _vector_tables(sub, 2)           # SubGraphMetadata.input_tensor_metadata
        if input_index >= len(inputs):
            return None
        for unit in _vector_tables(inputs[input_index], 4):   # TensorMetadata.process_units
            o_type = _field(unit, 0)                           # ProcessUnit.options_type
            if not o_type or unit.Get(nt.Uint8Flags, o_type + unit.Pos) != 1:
                continue                                       # 1 = NormalizationOptions
            o = _field(unit, 1)
            opts = _table(unit.Bytes, unit.Indirect(o + unit.Pos))
            mean, std = _floats_of(opts, 0), _floats_of(opts, 1)
            if mean and std and all(s != 0 for s in std):
                return Normalization(mean, std, "model metadata")
    except Exception:  # noqa: BLE001 - metadata we cannot read is metadata we do not have
        return None
    return None


def metadata_labels(model_bytes: bytes) -> Optional[List[str]]:
    """The class names of the model's first output (its TENSOR_AXIS_LABELS file, packed into
    the .tflite as a zip archive), or None."""
    try:
        sub = _subgraph_metadata(model_bytes)
        if sub is None or not zipfile.is_zipfile(io.BytesIO(model_bytes)):
            return None
        outputs = _vector_tables(sub, 3)
        import flatbuffers.number_types as nt
        for f in _vector_tables(outputs[0], 6) if outputs else []:
            o = _field(f, 2)                                   # AssociatedFile.type
            if o and f.Get(nt.Int8Flags, o + f.Pos) == 2:      # TENSOR_AXIS_LABELS
                with zipfile.ZipFile(io.BytesIO(model_bytes)) as z:
                    text = z.read(_string(f, 0)).decode("utf-8", "replace")
                return [ln.strip() for ln in text.splitlines() if ln.strip()]
    except Exception:  # noqa: BLE001
        return None
    return None


# ---- the folder ----------------------------------------------------------------------------------
def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def is_image_folder(path: Union[str, Path, None]) -> bool:
    """A folder holding images (directly or one folder per class) and no .npy files."""
    if path is None:
        return False
    p = Path(path).expanduser()
    if not p.is_dir() or any(p.glob("*.npy")):
        return False
    return any(_is_image(f) for f in p.iterdir()) or any(
        _is_image(f) for d in p.iterdir() if d.is_dir() for f in d.iterdir())


def image_files(folder: Path) -> List[Tuple[Path, Optional[str]]]:
    """(image, class name or None) in a stable order: the folder's own images (labels from
    labels.csv, if any), then each class folder's, sorted by name."""
    top = sorted(f for f in folder.iterdir() if _is_image(f))
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    out: List[Tuple[Path, Optional[str]]] = []
    csv_labels = _csv_labels(folder)
    for f in top:
        out.append((f, csv_labels.get(f.name) if csv_labels is not None else None))
    if csv_labels is not None:
        missing = [n for n in csv_labels if not (folder / n).is_file()]
        if missing:
            raise UsageError(f"{folder / LABELS_CSV}: {len(missing)} file(s) not in the folder,"
                             f" e.g. {missing[0]!r}", hint="paths are relative to the folder")
        unlabelled = [f.name for f, lab in out if lab is None]
        if unlabelled:
            raise UsageError(f"{folder / LABELS_CSV} has no label for {len(unlabelled)} image(s),"
                             f" e.g. {unlabelled[0]!r}", hint="one `file,label` line per image")
    for d in classes:
        out.extend((f, d.name) for f in sorted(d.iterdir()) if _is_image(f))
    return out[:MAX_IMAGES]


def _csv_labels(folder: Path) -> Optional[Dict[str, str]]:
    path = folder / LABELS_CSV
    if not path.is_file():
        return None
    out: Dict[str, str] = {}
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or (lineno == 1 and [c.strip().lower() for c in row[:2]] == ["file", "label"]):
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise UsageError(f"{path}, line {lineno}: expected `file,label`",
                                 hint="e.g. cat1.jpg,3 or cat1.jpg,tabby")
            out[row[0].strip()] = row[1].strip()
    return out


def class_indices(names: Sequence[Optional[str]], model_labels: Optional[List[str]],
                  where: str) -> Optional[np.ndarray]:
    """Class index per image: integers as given, else names looked up in the model's labels,
    else in the sorted set of names. None when no image has a label."""
    if all(n is None for n in names):
        return None
    given = [n for n in names if n is not None]
    if len(given) != len(names):
        raise UsageError(f"{where}: some images have a label and some do not",
                         hint="put every image in a class folder, or none")
    if all(n.lstrip("-").isdigit() for n in given):
        return np.asarray([int(n) for n in given], np.int64)
    table = model_labels or sorted(set(given))
    index = {n: i for i, n in enumerate(table)}
    unknown = sorted({n for n in given if n not in index})
    if unknown:
        raise UsageError(f"{where}: class {unknown[0]!r} is not one of the model's"
                         f" {len(table)} labels", hint="use the model's label names or indices")
    return np.asarray([index[n] for n in given], np.int64)


def _layout(shape: Tuple[int, ...]) -> Tuple[int, int, int, bool]:
    """(height, width, channels, channels_first) of an image input [1, H, W, C] / [1, C, H, W]."""
    if len(shape) == 4 or (len(shape) == 3 and shape[0] == 1):
        dims = shape[1:]                      # drop the batch of 1
    elif len(shape) == 3:
        dims = shape
    else:
        raise ValueError
    if len(dims) == 3 and dims[-1] in (1, 3, 4):
        return dims[0], dims[1], dims[2], False
    if len(dims) == 3 and dims[0] in (1, 3, 4):
        return dims[1], dims[2], dims[0], True
    if len(dims) == 2 and min(dims) > 4:      # [1, H, W]: one grayscale channel
        return dims[0], dims[1], 1, False
    raise ValueError


def load_image(path: Path, height: int, width: int, channels: int) -> np.ndarray:
    """One image as uint8 [height, width, channels] (RGB, RGBA or grayscale)."""
    from PIL import Image, UnidentifiedImageError
    from PIL.Image import DecompressionBombError
    try:
        with Image.open(path) as im:
            im = im.convert({1: "L", 3: "RGB", 4: "RGBA"}[channels])
            im = im.resize((width, height), Image.BILINEAR)
            arr = np.asarray(im, np.uint8)
    except (UnidentifiedImageError, DecompressionBombError, OSError, ValueError) as e:
        raise UsageError(f"image {path}: cannot be read ({str(e)[:100]})",
                         hint="remove it from the folder, or re-save it as JPEG/PNG") from None
    return arr.reshape(height, width, channels)


def load_images(folder: Path, detail: Dict, model_bytes: bytes, options: ImageOptions,
                what: str) -> Tuple[np.ndarray, Optional[np.ndarray], str]:
    """(inputs [N, *sample shape] of the input's dtype, labels or None, a note on how)."""
    shape = tuple(int(d) for d in detail["shape"])
    dtype = np.dtype(detail["dtype"])
    name = str(detail.get("name", "input"))
    try:
        h, w, c, first = _layout(shape)
    except ValueError:
        raise UsageError(f"{what} {folder}: a folder of images fits an image input [1, H, W, C];"
                         f" input {name!r} has shape {list(shape)}",
                         hint="pass a .npz with arrays of the input's shape") from None
    if h <= 0 or w <= 0:
        raise UsageError(f"{what} {folder}: input {name!r} has dynamic height/width"
                         f" {list(shape)}; images need a fixed size",
                         hint="pass a .npz of arrays already resized")
    files = image_files(folder)
    if not files:
        raise UsageError(f"{what} {folder} contains no images (.jpg, .jpeg, .png)")
    norm = options.normalization() or metadata_normalization(model_bytes)
    if norm is None and dtype.kind == "f":
        raise UsageError(f"{what} {folder}: the model has no normalization metadata, so the"
                         f" range its input {name!r} expects is unknown",
                         hint="pass --input-range 0,1 (or -1,1), or --mean/--std on 0..255")
    pixels = np.stack([load_image(f, h, w, c) for f, _ in files])      # [N, H, W, C] uint8
    if first:
        pixels = pixels.transpose(0, 3, 1, 2)
    how = f"{len(files)} images resized to {h}x{w}"
    if dtype == np.uint8:
        x = pixels
    else:
        x = norm.apply(pixels, 1 if first else -1) if norm is not None else pixels.astype(np.float32)
        if dtype.kind in "iu":
            from edge_bench_agent import tensors
            scale, zp = (detail.get("quantization") or (0.0, 0))
            if not scale:
                raise UsageError(f"{what} {folder}: integer input {name!r} has no quantization"
                                 " scale", hint="pass a .npz with the input's integers")
            x = tensors.quantize(x, dtype, float(scale), int(zp))
        else:
            x = x.astype(dtype)
    if norm is not None and dtype != np.uint8:
        how += f", normalized by {norm.source} (mean {_short(norm.mean)}, std {_short(norm.std)})"
    sample = shape[1:] if len(shape) == 4 or shape[:1] == (1,) else shape
    x = x.reshape((len(files),) + tuple(sample))
    labels = class_indices([lab for _, lab in files], metadata_labels(model_bytes),
                           f"{what} {folder}")
    return np.ascontiguousarray(x), labels, how


def _short(vals: Tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in vals)


def folder_as_npz(source: Optional[str], model_path: Path, signature: Optional[str],
                  options: Optional[ImageOptions], what: str,
                  metadata_from: Optional[Path] = None) -> Optional[str]:
    """`source` unchanged unless it is a folder of images; then the path of an .npz holding
    them as the model's input (`x`, or the input's name) and labels `y`. `metadata_from`: the
    file whose TFLite metadata to read (the user's file, when `model_path` is a derived copy)."""
    if not is_image_folder(source):
        return source
    from ..hashing import sha256_file
    from .modelinfo import model_inputs
    from .quantcache import default_cache_dir, write_atomic
    folder = Path(str(source)).expanduser()
    specs = model_inputs(model_path, signature)
    if len(specs) != 1:
        raise UsageError(f"{what} {folder}: a folder of images fits a model with one input;"
                         f" this one has {len(specs)} ({', '.join(s.name for s in specs)})",
                         hint="pass a .npz with one array per input name")
    options = options or ImageOptions()
    model_bytes = Path(metadata_from or model_path).read_bytes()
    h = hashlib.sha256(f"{FORMAT_VERSION}|{options.key()}|{specs[0].name}|{specs[0].shape}|"
                       f"{specs[0].dtype}|{specs[0].detail.get('quantization')}|".encode())
    norm = options.normalization() or metadata_normalization(model_bytes)
    h.update(f"{norm}|{metadata_labels(model_bytes)}|".encode())
    for f, lab in image_files(folder):
        h.update(f"{f.relative_to(folder)}|{lab}|{sha256_file(f)}\n".encode())
    out = default_cache_dir().parent / "images" / h.hexdigest()[:24] / f"{folder.name or 'images'}.npz"
    if not out.is_file():
        x, y, how = load_images(folder, specs[0].detail, model_bytes, options, what)
        arrays = {"x": x, **({"y": y} if y is not None else {})}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(out, buf.getvalue())
        write_atomic(out.with_suffix(".txt"), how.encode())
    return str(out)


def display_name(path: Union[str, Path]) -> str:
    """The name to show for a calibration/eval file: `FOLDER/` for the .npz a folder of images
    became (folder_as_npz), else the file's own name."""
    p = Path(path)
    if p.suffix == ".npz" and p.parent.parent.name == "images" and p.with_suffix(".txt").is_file():
        return f"{p.stem}/"
    return p.name


def describe(npz: Optional[str]) -> Optional[str]:
    """How a folder of images became the .npz `npz` (None when it did not come from one)."""
    if not npz:
        return None
    note = Path(npz).with_suffix(".txt")
    try:
        return note.read_text() if note.is_file() else None
    except OSError:
        return None
