"""Convert a faster-whisper (CTranslate2) Whisper model folder into an openai-whisper checkpoint.

The only Whisper weights we can use offline ship as a CTranslate2 folder (model.bin,
config.json, ...). openai-whisper gives us word timestamps via cross-attention
alignment, so we rebuild its checkpoint from the CTranslate2 variables: parse
model.bin with numpy, undo quantization and q/k/v fusion, rename to openai-whisper's
state_dict keys, and encode config.json's alignment heads the way openai-whisper does.

Usage: ``python -m clipcite.ingestion.whisper_convert MODEL_DIR OUT.pt``
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import whisper.model

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
# Binary v4 introduced the explicit dtype id this parser relies on; v6 is the newest known.
_MIN_BINARY_VERSION = 4
_MAX_BINARY_VERSION = 6
_SPEC_NAME = "WhisperSpec"
# Fallback when a spec does not store num_heads: every Whisper size uses 64-dim heads.
_HEAD_DIM = 64

Variables = dict[str, np.ndarray]


class _BinaryReader:
    """Sequential little-endian reader over CTranslate2's model.bin bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def scalar(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self._data, self._offset)
        self._offset += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        # Length is stored as uint16 and counts the trailing NUL byte.
        length = self.scalar("H")
        raw = self._data[self._offset : self._offset + length - 1]
        self._offset += length
        return raw.decode("utf-8")

    def raw(self, num_bytes: int) -> bytes:
        chunk = self._data[self._offset : self._offset + num_bytes]
        if len(chunk) != num_bytes:
            raise ValueError("model.bin is truncated")
        self._offset += num_bytes
        return chunk


def _decode_array(raw: bytes, dtype_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Turn raw variable bytes into a numpy array (bfloat16 widened to float32)."""
    if dtype_name == "bfloat16":
        # numpy has no bfloat16: its bits are the upper half of a float32.
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype_name).newbyteorder("<")).reshape(shape)


def _read_variable(reader: _BinaryReader) -> tuple[str, np.ndarray]:
    name = reader.string()
    rank = reader.scalar("B")
    shape = tuple(reader.scalar("I") for _ in range(rank))
    dtype_name = _CT2_DTYPES[reader.scalar("B")]
    num_bytes = reader.scalar("I")
    return name, _decode_array(reader.raw(num_bytes), dtype_name, shape)


def _check_header(reader: _BinaryReader) -> None:
    version = reader.scalar("I")
    if not _MIN_BINARY_VERSION <= version <= _MAX_BINARY_VERSION:
        raise ValueError(f"unsupported CTranslate2 binary version {version}")
    spec = reader.string()
    reader.scalar("I")  # spec revision: the Whisper variable layout is the same in 1-3
    if spec != _SPEC_NAME:
        raise ValueError(f"expected a {_SPEC_NAME} model, got {spec!r}")


def read_ct2_variables(model_bin: Path) -> Variables:
    """Parse a CTranslate2 Whisper model.bin into ``{name: array}`` with aliases resolved."""
    reader = _BinaryReader(model_bin.read_bytes())
    _check_header(reader)
    variables = dict(_read_variable(reader) for _ in range(reader.scalar("I")))
    for _ in range(reader.scalar("I")):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
        # CTranslate2 aliases a quantized weight's scale implicitly.
        if target + "_scale" in variables:
            variables[alias + "_scale"] = variables[target + "_scale"]
    return variables


def _dequantize(weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Undo CTranslate2's quantization: int8 has one scale per output row, int16 one in total."""
    rows = weight.astype(np.float32).reshape(weight.shape[0], -1)
    per_row = np.asarray(scale, dtype=np.float32).reshape(-1, 1)
    return (rows / per_row).reshape(weight.shape)


def _weight(variables: Variables, name: str) -> np.ndarray:
    """A float weight by CTranslate2 name, dequantized when stored with a ``_scale``."""
    value = variables[name]
    scale = variables.get(name + "_scale")
    return value if scale is None else _dequantize(value, scale)


def _tensor(array: np.ndarray) -> torch.Tensor:
    # copy(): frombuffer arrays are read-only views into the file bytes.
    return torch.from_numpy(np.array(array, copy=True))


def _layer_norm(variables: Variables, src: str, dst: str) -> dict[str, torch.Tensor]:
    return {
        f"{dst}.weight": _tensor(variables[f"{src}/gamma"]),
        f"{dst}.bias": _tensor(variables[f"{src}/beta"]),
    }


def _linear(variables: Variables, src: str, dst: str) -> dict[str, torch.Tensor]:
    return {
        f"{dst}.weight": _tensor(_weight(variables, f"{src}/weight")),
        f"{dst}.bias": _tensor(variables[f"{src}/bias"]),
    }


def _split_linear(
    variables: Variables, src: str, dst: str, names: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """Split a fused projection (rows stacked in ``names`` order) into separate linears."""
    weights = np.split(_weight(variables, f"{src}/weight"), len(names))
    biases = np.split(variables[f"{src}/bias"], len(names))
    state: dict[str, torch.Tensor] = {}
    for name, weight, bias in zip(names, weights, biases):
        state[f"{dst}.{name}.weight"] = _tensor(weight)
        # openai-whisper's key projection has no bias; CTranslate2 stores zeros there
        # (and any key bias would shift each query's scores uniformly, a softmax no-op).
        if name != "key":
            state[f"{dst}.{name}.bias"] = _tensor(bias)
    return state


def _self_attention(variables: Variables, src: str, dst: str) -> dict[str, torch.Tensor]:
    state = _split_linear(variables, f"{src}/linear_0", dst, ("query", "key", "value"))
    state.update(_linear(variables, f"{src}/linear_1", f"{dst}.out"))
    return state


def _cross_attention(variables: Variables, src: str, dst: str) -> dict[str, torch.Tensor]:
    state = _linear(variables, f"{src}/linear_0", f"{dst}.query")
    state.update(_split_linear(variables, f"{src}/linear_1", dst, ("key", "value")))
    state.update(_linear(variables, f"{src}/linear_2", f"{dst}.out"))
    return state


def _block(variables: Variables, src: str, dst: str, cross: bool) -> dict[str, torch.Tensor]:
    """One residual attention block (pre-norm: CTranslate2 keeps each norm with its sublayer)."""
    state = _self_attention(variables, f"{src}/self_attention", f"{dst}.attn")
    state.update(_layer_norm(variables, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln"))
    if cross:
        state.update(_cross_attention(variables, f"{src}/attention", f"{dst}.cross_attn"))
        state.update(
            _layer_norm(variables, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        )
    state.update(_linear(variables, f"{src}/ffn/linear_0", f"{dst}.mlp.0"))
    state.update(_linear(variables, f"{src}/ffn/linear_1", f"{dst}.mlp.2"))
    state.update(_layer_norm(variables, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln"))
    return state


def _num_layers(variables: Variables, prefix: str) -> int:
    # "layer_<i>/" only: "layer_norm" shares the prefix.
    pattern = re.compile(rf"{prefix}/layer_(\d+)/")
    return len({match.group(1) for name in variables if (match := pattern.match(name))})


def _encoder_state(variables: Variables) -> dict[str, torch.Tensor]:
    state = {
        "encoder.positional_embedding": _tensor(variables["encoder/position_encodings/encodings"]),
        "encoder.conv1.weight": _tensor(_weight(variables, "encoder/conv1/weight")),
        "encoder.conv1.bias": _tensor(variables["encoder/conv1/bias"]),
        "encoder.conv2.weight": _tensor(_weight(variables, "encoder/conv2/weight")),
        "encoder.conv2.bias": _tensor(variables["encoder/conv2/bias"]),
    }
    for i in range(_num_layers(variables, "encoder")):
        state.update(_block(variables, f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False))
    state.update(_layer_norm(variables, "encoder/layer_norm", "encoder.ln_post"))
    return state


def _decoder_state(variables: Variables) -> dict[str, torch.Tensor]:
    # The output projection is tied to token_embedding in openai-whisper (an alias in CT2).
    state = {
        "decoder.token_embedding.weight": _tensor(_weight(variables, "decoder/embeddings/weight")),
        "decoder.positional_embedding": _tensor(variables["decoder/position_encodings/encodings"]),
    }
    for i in range(_num_layers(variables, "decoder")):
        state.update(_block(variables, f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True))
    state.update(_layer_norm(variables, "decoder/layer_norm", "decoder.ln"))
    return state


def build_state_dict(variables: Variables) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variables to an openai-whisper ``model_state_dict``."""
    return {**_encoder_state(variables), **_decoder_state(variables)}


def _num_heads(variables: Variables, prefix: str, n_state: int) -> int:
    stored = variables.get(f"{prefix}/num_heads")
    return int(stored) if stored is not None else n_state // _HEAD_DIM


def model_dimensions(variables: Variables) -> dict[str, int]:
    """Derive openai-whisper's ``ModelDimensions`` fields from variable shapes."""
    n_audio_ctx, n_audio_state = variables["encoder/position_encodings/encodings"].shape
    n_text_ctx, n_text_state = variables["decoder/position_encodings/encodings"].shape
    return {
        "n_mels": int(variables["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(n_audio_ctx),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": _num_heads(variables, "encoder", n_audio_state),
        "n_audio_layer": _num_layers(variables, "encoder"),
        "n_vocab": int(variables["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(n_text_ctx),
        "n_text_state": int(n_text_state),
        "n_text_head": _num_heads(variables, "decoder", n_text_state),
        "n_text_layer": _num_layers(variables, "decoder"),
    }


def encode_alignment_heads(pairs: list[list[int]], n_text_layer: int, n_text_head: int) -> bytes:
    """Encode ``[layer, head]`` pairs like openai-whisper's ``_ALIGNMENT_HEADS`` (b85 of gzip)."""
    mask = np.zeros((n_text_layer, n_text_head), dtype=bool)
    for layer, head in pairs:
        mask[layer, head] = True
    # mtime=0 keeps the output byte-identical across runs.
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0))


def _alignment_pairs(model_dir: Path) -> list[list[int]] | None:
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        return None
    return json.loads(config_path.read_text(encoding="utf-8")).get("alignment_heads")


def convert_faster_whisper(model_dir: Path, out_path: Path) -> Path:
    """Write an openai-whisper checkpoint built from a faster-whisper model folder.

    Args:
        model_dir: folder holding CTranslate2's model.bin and (optionally) config.json.
        out_path: where to write the ``.pt`` checkpoint; parent folders are created.

    Returns:
        ``out_path``.
    """
    variables = read_ct2_variables(Path(model_dir) / "model.bin")
    dims = model_dimensions(variables)
    checkpoint: dict[str, object] = {
        "dims": dims,
        "model_state_dict": build_state_dict(variables),
    }
    pairs = _alignment_pairs(Path(model_dir))
    if pairs:
        checkpoint["alignment_heads"] = encode_alignment_heads(
            pairs, dims["n_text_layer"], dims["n_text_head"]
        )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out_path)
    return out_path


def load_converted(path: Path, device: str = "cpu") -> "whisper.model.Whisper":
    """Build an openai-whisper model from a checkpoint written by ``convert_faster_whisper``.

    Unlike ``whisper.load_model(path)``, this also applies the stored alignment heads,
    which word-level timestamps depend on.
    """
    from whisper.model import ModelDimensions, Whisper  # heavy import, only when needed

    checkpoint = torch.load(Path(path), map_location=device, weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    alignment_heads = checkpoint.get("alignment_heads")
    if alignment_heads is not None:
        model.set_alignment_heads(alignment_heads)
    return model.to(device)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m clipcite.ingestion.whisper_convert MODEL_DIR OUT.pt``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="faster-whisper (CTranslate2) model folder")
    parser.add_argument("out_path", type=Path, help="openai-whisper checkpoint to write (.pt)")
    args = parser.parse_args(argv)
    print(convert_faster_whisper(args.model_dir, args.out_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
