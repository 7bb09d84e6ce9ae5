"""A model is a directory: config.json, model.safetensors and the SentencePiece model file(s).

Nothing here ever unpickles: weights are read with safetensors, whose header is checked by hand
first so a broken or hostile file gives one clear line instead of a library traceback.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from engine.decoding import DecodingOptions
from engine.devices import DEVICE_CHOICES
from engine.files import write_atomic
from engine.generation import GenerationRules, our_rules
from engine.model import ModelConfig, Transformer
from engine.paths import CONFIG_FILE
from engine.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TextTokenizer, Tokenizer, TokenizerError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
FORMAT_NAME = "attention-studio-model"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 * 1024 * 1024  # a real header of a few hundred tensors is a few kB
MAX_CONFIG_BYTES = 1024 * 1024  # a real config.json is under 1 kB
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
MAX_POSITIONS_LIMIT = 16384  # far beyond what a map on screen can show; bounds the positional table
SPECIAL_IDS = {"pad_id": PAD_ID, "unk_id": UNK_ID, "bos_id": BOS_ID, "eos_id": EOS_ID}
MIN_BYTES_PER_PARAMETER = 1  # safetensors' smallest float (float8): what bounds a parameter count by file size


class ModelLoadError(ValueError):
    """A model directory that cannot be loaded; str() is one line naming the problem."""


@dataclass(frozen=True)
class ModelInfo:
    """What config.json says besides the sizes."""

    name: str
    source_language: str
    target_language: str
    source_tokenizer: str  # file name inside the directory
    target_tokenizer: str


@dataclass
class LoadedModel:
    """A model ready to translate: weights on a device, in eval mode, with its tokenizer."""

    model: Transformer
    tokenizer: TextTokenizer
    info: ModelInfo
    directory: Path
    device: torch.device
    family: str = FORMAT_NAME  # which loader read it (engine/families)
    decoding: DecodingOptions = field(default_factory=DecodingOptions)  # the model's own defaults

    @property
    def config(self) -> ModelConfig:
        return self.model.cfg


def resolve_device(choice: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; an explicit choice that is not available is an error."""
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but MPS is not available")
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}; choose {', '.join(DEVICE_CHOICES)}")
    return torch.device(choice)


def unique_state(model: Transformer) -> dict[str, torch.Tensor]:
    """The state dict with tied tensors kept once, under the first name that holds them."""
    seen: set[int] = set()
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor
    return state


def save_model(
    model: Transformer,
    directory: Path,
    info: ModelInfo,
    extra: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write config.json and model.safetensors (the tokenizer files are copied by the caller);
    `dtype` float16 halves the file, and the loader converts back to float32."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().to("cpu", dtype).contiguous() for name, t in unique_state(model).items()}
    # through write_atomic: a normal file mode (save_file's is private, 0600) and never half written
    write_atomic(directory / WEIGHTS_FILE, save(state, metadata={"format": FORMAT_NAME}))
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": info.name,
        "source_language": info.source_language,
        "target_language": info.target_language,
        "tokenizer": {"source": info.source_tokenizer, "target": info.target_tokenizer},
        "model": model.cfg.to_dict(),
        **(extra or {}),
    }
    write_atomic(directory / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())


def read_config_json(directory: Path) -> dict:
    """config.json as a mapping, read with a size bound; raises ModelLoadError naming what is wrong."""
    return read_json(Path(directory), CONFIG_FILE, required=True) or {}


def read_json(directory: Path, file_name: str, required: bool, limit: int = MAX_CONFIG_BYTES) -> dict | None:
    """A small JSON object file of a model directory (None when absent and not `required`)."""
    if not directory.is_dir():
        raise ModelLoadError(f"{directory}: not a directory")
    path = directory / file_name
    if not path.is_file():
        if not required:
            return None
        if file_name == CONFIG_FILE:
            raise ModelLoadError(f"{directory}: not a model directory (no {CONFIG_FILE})")
        raise ModelLoadError(f"{directory}: missing {file_name}")
    if path.stat().st_size > limit:
        raise ModelLoadError(f"{file_name}: {path.stat().st_size} bytes, refused as oversized (at most {limit:,})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{file_name}: not valid JSON ({error})") from None
    except RecursionError:
        raise ModelLoadError(f"{file_name}: not valid JSON (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{file_name}: not a JSON object")
    return raw


def read_config(directory: Path) -> tuple[ModelConfig, ModelInfo, dict]:
    """Parse config.json; raises ModelLoadError naming what is wrong."""
    directory = Path(directory)
    raw = read_config_json(directory)
    if raw.get("format") != FORMAT_NAME:
        raise ModelLoadError(f"{CONFIG_FILE}: not an Attention Studio model config (format is not {FORMAT_NAME!r})")
    try:
        check_model_section(raw["model"])
        cfg = ModelConfig.from_dict(raw["model"])
        tokenizer = raw["tokenizer"]
        info = ModelInfo(
            name=str(raw.get("name", directory.name)),
            source_language=str(raw["source_language"]),
            target_language=str(raw["target_language"]),
            source_tokenizer=str(tokenizer["source"]),
            target_tokenizer=str(tokenizer["target"]),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise ModelLoadError(f"{CONFIG_FILE}: invalid model description ({error})") from None
    for file_name in (info.source_tokenizer, info.target_tokenizer):
        if Path(file_name).name != file_name:
            raise ModelLoadError(f"{CONFIG_FILE}: tokenizer file {file_name!r} must be a plain file name")
    return cfg, info, raw


def check_model_section(values: object) -> None:
    """Refuse a "model" section whose values have the wrong type or are out of range.

    ModelConfig checks the relations between sizes; this checks what a hand-edited or hostile file
    can get wrong besides: a float or a boolean where a count belongs, NaN, special ids that differ
    from the tokenizer's, sizes that no model could have. Raises ValueError or TypeError.
    """
    if not isinstance(values, dict):
        raise TypeError(f"'model' must be a mapping, got {type(values).__name__}")
    defaults = {f.name: f.default for f in fields(ModelConfig) if f.default is not MISSING}
    wanted = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string"}
    for name, value in values.items():
        expected = type(defaults.get(name, value))
        if expected is bool:
            ok = isinstance(value, bool)
        elif expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif expected is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise TypeError(f"{name} must be {wanted.get(expected, expected.__name__)}, got {value!r}")
    for name in ("d_model", "n_heads"):
        if name in values and values[name] < 1:
            raise ValueError(f"{name} must be positive, got {values[name]}")
    for name, expected_id in SPECIAL_IDS.items():
        if values.get(name, expected_id) != expected_id:
            raise ValueError(f"{name} is {values[name]}, but every tokenizer here uses {expected_id}")
    if values.get("max_positions", 0) > MAX_POSITIONS_LIMIT:
        raise ValueError(f"max_positions {values['max_positions']} is beyond the {MAX_POSITIONS_LIMIT} supported")
    if not 0 <= values.get("dropout", 0.0) < 1:
        raise ValueError(f"dropout must be in [0, 1), got {values['dropout']}")
    if values.get("pe_base", 1.0) <= 0:
        raise ValueError(f"pe_base must be positive, got {values['pe_base']}")


def minimum_parameters(cfg: ModelConfig) -> int:
    """A lower bound on the parameters `cfg` describes: embeddings, each layer's attention projections
    (four d_model × d_model per attention) and feed-forward (two d_model × d_ff), biases left out."""
    embeddings = cfg.src_vocab_size * cfg.d_model * (1 if cfg.share_embeddings else 2)
    attention = 4 * cfg.d_model * cfg.d_model
    feed_forward = 2 * cfg.d_model * cfg.d_ff
    encoder = cfg.n_encoder_layers * (attention + feed_forward)
    decoder = cfg.n_decoder_layers * (2 * attention + feed_forward)
    return embeddings + encoder + decoder


def check_safetensors_header(path: Path) -> int:
    """Refuse pickles and files whose safetensors header is truncated, oversized or not JSON.

    Returns the number of bytes of tensor data the header describes.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise ModelLoadError(f"{path.name}: this is a pickle/torch.save file; only safetensors weights are loaded")
        if len(head) < 8:
            raise ModelLoadError(f"{path.name}: truncated ({size} bytes), not a safetensors file")
        (header_size,) = struct.unpack("<Q", head)
        if header_size > MAX_HEADER_BYTES:
            raise ModelLoadError(f"{path.name}: header claims {header_size} bytes, refused as oversized or corrupt")
        if 8 + header_size > size:
            raise ModelLoadError(f"{path.name}: truncated (header runs past the end of the file)")
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ModelLoadError(f"{path.name}: corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path.name}: corrupt safetensors header")
    ends = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise ModelLoadError(f"{path.name}: corrupt safetensors header (entry {key[:60]!r} has no data offsets)")
        ends.append(offsets[1])
    data_end = max(ends, default=0)
    if 8 + header_size + data_end > size:
        raise ModelLoadError(
            f"{path.name}: truncated ({size} bytes, the header describes {8 + header_size + data_end})"
        )
    return data_end


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN and no infinity: the smallest and largest values are finite (NaN propagates to both).
    One pass without a boolean copy, about 10× faster than isfinite().all() on a model's weights."""
    smallest, largest = torch.aminmax(tensor)
    return bool(torch.isfinite(smallest) & torch.isfinite(largest))


def load_weights(
    model: nn.Module,
    path: Path,
    file_names: Mapping[str, Sequence[str]] | None = None,
    ignored: frozenset[str] = frozenset(),
) -> None:
    """Copy safetensors weights into `model`, checking every name and shape against its config.

    `file_names` gives, for a family whose files name tensors their own way, the names each of the
    model's tensors may have in the file (the first present is read: tied tensors are saved under
    one of several names); names in `ignored` may be present and are skipped. The caller has
    checked the header (`check_safetensors_header`) first.
    """
    expected = unique_state(model)
    candidates = file_names if file_names is not None else {name: (name,) for name in expected}
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = set(handle.keys())
            source = {ours: next((n for n in candidates[ours] if n in names), candidates[ours][0]) for ours in expected}
            missing = sorted(n for n in source.values() if n not in names)
            known = {n for options in candidates.values() for n in options} | ignored
            unexpected = sorted(names - known)
            if missing:
                raise ModelLoadError(
                    f"{path.name}: missing tensor(s) {', '.join(missing[:3])}" + (" …" if len(missing) > 3 else "")
                )
            if unexpected:
                raise ModelLoadError(
                    f"{path.name}: unexpected tensor(s) {', '.join(unexpected[:3])}"
                    + (" …" if len(unexpected) > 3 else "")
                )
            with torch.no_grad():
                for ours, target in expected.items():
                    name = source[ours]
                    shape = tuple(handle.get_slice(name).get_shape())
                    if shape != tuple(target.shape):
                        raise ModelLoadError(
                            f"{path.name}: tensor {name} has shape {list(shape)}, the config implies {list(target.shape)}"
                        )
                    tensor = handle.get_tensor(name)
                    if not tensor.is_floating_point():
                        raise ModelLoadError(f"{path.name}: tensor {name} is {tensor.dtype}, expected floating point")
                    target.copy_(tensor)
                    if target.numel() and not all_finite(target):
                        raise ModelLoadError(f"{path.name}: tensor {name} contains NaN or infinity")
    except SafetensorError as error:
        raise ModelLoadError(f"{path.name}: corrupt safetensors file ({error})") from None


def build_for_weights(cfg: ModelConfig, weights: Path, rules: GenerationRules = GenerationRules()) -> Transformer:
    """The (untrained) model `cfg` describes, once the weights file's header has been checked and can
    hold that many parameters; ModelLoadError otherwise.

    Checked before building: a config that lies about its sizes would otherwise allocate (and
    initialise) gigabytes, or take the process down, before the first shape is compared.
    """
    data_bytes = check_safetensors_header(weights)
    needed = minimum_parameters(cfg)
    if needed * MIN_BYTES_PER_PARAMETER > data_bytes:
        raise ModelLoadError(
            f"{CONFIG_FILE}: describes at least {needed:,} parameters, but {WEIGHTS_FILE} holds only "
            f"{data_bytes:,} bytes of tensors (the config's shapes do not match the weights)"
        )
    try:
        return Transformer(cfg, rules, initialise=False)  # load_weights sets every parameter next
    except (RuntimeError, ValueError, MemoryError) as error:  # e.g. sizes too large to allocate
        raise ModelLoadError(f"{CONFIG_FILE}: cannot build the model it describes ({error})") from None


def load_model(directory: Path | str, device: str = "auto", isolate_tokenizer: bool = True) -> LoadedModel:
    """Load a model directory; every failure is a ModelLoadError with a one-line message.

    `isolate_tokenizer` first reads the SentencePiece files in a child process, so a file that
    would crash the native library cannot take this process down.
    """
    directory = Path(directory)
    cfg, info, _ = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ModelLoadError(f"{pickles[0]}: pickle/torch.save weights are refused; convert them to {WEIGHTS_FILE}")
        raise ModelLoadError(f"{directory}: missing {WEIGHTS_FILE}")
    for file_name in {info.source_tokenizer, info.target_tokenizer}:
        if not (directory / file_name).is_file():
            raise ModelLoadError(f"{directory}: missing tokenizer file {file_name}")
    try:
        tokenizer = Tokenizer(
            directory / info.source_tokenizer, directory / info.target_tokenizer, isolate=isolate_tokenizer
        )
    except TokenizerError as error:
        raise ModelLoadError(str(error)) from None
    if (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size) != (cfg.src_vocab_size, cfg.tgt_vocab_size):
        raise ModelLoadError(
            f"{CONFIG_FILE}: vocabulary sizes {cfg.src_vocab_size}/{cfg.tgt_vocab_size} disagree with the "
            f"tokenizer's {tokenizer.src_vocab_size}/{tokenizer.tgt_vocab_size}"
        )
    model = build_for_weights(cfg, weights, our_rules(tokenizer.target_pieces(range(tokenizer.tgt_vocab_size))))
    load_weights(model, weights)
    torch_device = resolve_device(device)
    model.to(torch_device).eval()
    log.info("loaded %s (%d parameters) on %s", info.name, model.num_parameters(), torch_device)
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, directory=directory, device=torch_device)


def hf_weights_file(directory: Path, model_class: str) -> Path:
    """A Hugging Face folder's model.safetensors; ModelLoadError for sharded or pickled weights
    (never unpickled: the message says how to convert them with `model_class`) or none."""
    weights = directory / WEIGHTS_FILE
    if weights.is_file():
        return weights
    if (directory / f"{WEIGHTS_FILE}.index.json").is_file():
        raise ModelLoadError(
            f"{directory}: sharded safetensors weights are not supported; save them as one {WEIGHTS_FILE}"
        )
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"{pickles[0]}: pickled weights are refused (opening one can run code); convert the folder to "
            f'{WEIGHTS_FILE} once, on a machine you trust: python -c "from transformers import {model_class} as M; '
            f"M.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\""
        )
    raise ModelLoadError(f"{directory}: missing {WEIGHTS_FILE}")


class FileLayout(nn.Module):
    """Empty tensors under a file's own names and in its shapes, for load_weights to fill and check
    before a family converts them (GPT-2's Conv1D weights, BERT's names) into our modules."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__()
        for name, shape in shapes.items():
            *path, leaf = name.split(".")
            module: nn.Module = self
            for part in path:
                if part not in module._modules:
                    module.add_module(part, nn.Module())
                module = module._modules[part]  # type: ignore[assignment]
            module.register_buffer(leaf, torch.empty(shape))
