"""Model types, checkpoint resolution (file, cache, download, bundled) and loading.

This layer knows checkpoints and SAM, nothing about videos. Every model, real or
small, goes through :func:`load_sam`: read a state_dict from a file, check that it
fits the requested type, build the architecture and load the weights.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import torch
from tqdm.auto import tqdm

from ..errors import PersamError, error_line
from ..io.files import atomic_write
from ..options import option
from .compiling import COMPILE_MODES
from .fast_path import ATTENTION_MODES, DECODER_MODES, FAST_MODEL, PRECISIONS
from .quantizing import QUANTIZE_MODES
from .sam2_checkpoints import SAM2_SIZES, describe_sam2_state, sam2_url

DEFAULT_MODEL_TYPE = "small"
CACHE_ENV = "PERSAM_VIDEO_CACHE"
MIRROR_ENV = "PERSAM_VIDEO_MIRROR"
BUNDLED_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class CheckpointInfo:
    """Where a model type's official weights come from."""

    filename: str
    url: Optional[str]
    sha256: Optional[str]


CHECKPOINTS: Dict[str, CheckpointInfo] = {
    "vit_h": CheckpointInfo("sam_vit_h_4b8939.pth",
                            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
                            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
    "vit_l": CheckpointInfo("sam_vit_l_0b3195.pth",
                            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
                            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    "vit_b": CheckpointInfo("sam_vit_b_01ec64.pth",
                            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
    "vit_t": CheckpointInfo("mobile_sam.pt",
                            "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
                            "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"),
    # The project's own small model ships inside the package (see small.py).
    "small": CheckpointInfo("small_sam.pth", None, None),
    # SAM 2.1 (sam2_checkpoints.py). No digest: none could be verified where this was written; the
    # architecture check still names what a wrong or damaged file holds.
    **{name: CheckpointInfo(size.filename, sam2_url(name), None) for name, size in SAM2_SIZES.items()},
}
MODEL_TYPES = tuple(CHECKPOINTS)
_ENCODER_WIDTHS = {1280: "vit_h", 1024: "vit_l", 768: "vit_b"}


def cache_dir() -> Path:
    """Folder for downloaded checkpoints: ``$PERSAM_VIDEO_CACHE`` or ``~/.cache/persam-video``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "persam-video")


def compiled_dir() -> Path:
    """Folder for torch.compile's kernels: ``compiled`` in :func:`cache_dir`."""
    return cache_dir() / "compiled"


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PersamError(f"device {device!r} asked for, but CUDA is not available here (use device cpu)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise PersamError(f"unknown device {device!r}: use auto, cpu or cuda") from None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, sha256: Optional[str], progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with a progress bar; check its sha256; rename into place.

    Nothing is left at ``dest`` unless the whole file arrived and its digest matched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fetch(tmp: str) -> None:
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"downloading {dest.name}", disable=not progress) as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PersamError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
        if sha256 is not None and digest.hexdigest() != sha256:
            raise PersamError(
                f"downloaded {dest.name} has sha256 {digest.hexdigest()}, expected {sha256}; file discarded")

    atomic_write(dest, fetch)
    return dest


def bundled_checkpoint(model_type: str = "small") -> Path:
    """Path of a checkpoint shipped inside the package, checked against its .sha256 file."""
    info = CHECKPOINTS[model_type]
    path = BUNDLED_DIR / info.filename
    if not path.is_file():
        raise PersamError(
            f"the bundled {model_type} weights are missing ({path}); reinstall persam-video "
            f"or give a checkpoint file")
    digest_file = path.with_suffix(".sha256")
    if digest_file.is_file():
        expected = digest_file.read_text().split()[0]
        if sha256_of(path) != expected:
            raise PersamError(f"bundled weights {path} are corrupt: sha256 does not match {digest_file.name}")
    return path


def resolve_checkpoint(model_type: str, checkpoint: Optional[os.PathLike] = None,
                       allow_download: bool = True, progress: bool = True) -> Path:
    """Find the checkpoint file: the given path, the bundled file, the cache, or a download."""
    if model_type not in CHECKPOINTS:
        raise PersamError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise PersamError(f"checkpoint not found: {path}")
        return path
    info = CHECKPOINTS[model_type]
    if info.url is None:
        return bundled_checkpoint(model_type)
    cached = cache_dir() / info.filename
    if cached.is_file():
        return cached
    if not allow_download:
        raise PersamError(f"no checkpoint for {model_type} in {cache_dir()}; give a checkpoint file")
    mirror = os.environ.get(MIRROR_ENV)
    url = f"{mirror.rstrip('/')}/{info.filename}" if mirror else info.url
    return download(url, cached, info.sha256, progress=progress)


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """Load a state_dict from a checkpoint file (plain, or wrapped under 'model'/'state_dict')."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PersamError(f"cannot read checkpoint {path}: {error_line(exc)}") from None
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PersamError(f"{path} is not a SAM checkpoint (expected a state_dict of tensors)")
    return state


def infer_model_type(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Tell the architecture of a SAM state_dict from its keys and shapes; None if unknown."""
    sam2 = describe_sam2_state(state)
    if sam2 in SAM2_SIZES:
        return sam2
    if "image_encoder.patch_embed.seq.0.c.weight" in state:
        return "vit_t"
    proj = state.get("image_encoder.patch_embed.proj.weight")
    if proj is None or "mask_decoder.iou_token.weight" not in state:
        return None
    width = int(proj.shape[0])
    if width in _ENCODER_WIDTHS:
        return _ENCODER_WIDTHS[width]
    from .small import SMALL_CONFIG
    if width == SMALL_CONFIG.encoder_dim:
        return "small"
    return None


def _builders() -> Dict[str, Callable[[Optional[Mapping[str, torch.Tensor]]], torch.nn.Module]]:
    """Model type -> builder; a builder gets the state_dict to be loaded (or None) for the sizes
    that the file decides (the small model's input size); the others ignore it."""
    # build_sam, not the package: segment_anything's __init__ imports torchvision (see sam_import.py)
    from segment_anything.build_sam import sam_model_registry

    from .sam2_model import build_sam2_image
    from .small import build_small_sam, config_for_state

    def vit_t(state):
        try:
            from mobile_sam import sam_model_registry as mobile_registry
        except ImportError:
            raise PersamError(
                "model type vit_t needs the optional MobileSAM package: pip install 'persam-video[mobile]'"
            ) from None
        return mobile_registry["vit_t"](checkpoint=None)

    return {
        "vit_h": lambda state: sam_model_registry["vit_h"](checkpoint=None),
        "vit_l": lambda state: sam_model_registry["vit_l"](checkpoint=None),
        "vit_b": lambda state: sam_model_registry["vit_b"](checkpoint=None),
        "vit_t": vit_t,
        "small": lambda state: build_small_sam(config_for_state(state)),
        **{name: (lambda state, name=name: build_sam2_image(name)) for name in SAM2_SIZES},
    }


def build_model(model_type: str, state: Optional[Mapping[str, torch.Tensor]] = None) -> torch.nn.Module:
    """The architecture of ``model_type`` with freshly initialised weights, sized for ``state``
    (the state_dict about to be loaded) where the file decides a size; default sizes without it.
    Its mask decoder is built with PerSAM's switches (:mod:`.guided_decoder`; SAM 2.1's adapter builds
    its own)."""
    from .guided_decoder import guided_decoder

    if model_type not in CHECKPOINTS:
        raise PersamError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    model = _builders()[model_type](state)
    model.mask_decoder = guided_decoder(model.mask_decoder)
    return model


def load_sam(model_type: str = DEFAULT_MODEL_TYPE, checkpoint: Optional[os.PathLike] = None,
             device: str = "auto", allow_download: bool = True, progress: bool = True,
             precision: str = "fp32", attention: str = "auto", decoder: str = "auto",
             compile: str = "off", quantize: str = "off") -> torch.nn.Module:
    """Load a SAM model of ``model_type`` from ``checkpoint`` (or the default place), ready for inference.

    ``precision`` (auto, fp32, bf16, fp16), ``attention`` (auto, fused, plain) and ``decoder`` (auto,
    fast, exact) choose the fast path (:func:`persam_video.model.fast_path.apply_precision`) and ``compile``
    (auto, on, off) torch.compile of the image encoder (:mod:`persam_video.model.compiling`), ``quantize``
    (off, int8) its Linear layers in int8 (:mod:`persam_video.model.quantizing`); the defaults, fp32 and
    off, are the model exactly as segment_anything builds it. The concrete precision is kept in
    ``model.precision``."""
    from .compiling import compile_encoder, resolve_compile
    from .fast_path import apply_precision, resolve_attention, resolve_decoder, resolve_precision
    from .quantizing import check_quantize, quantize_encoder

    target = resolve_device(device)
    # a bad value fails before loading
    resolve_decoder(decoder, resolve_attention(attention, resolve_precision(precision, target)))
    compiled = resolve_compile(compile, model_type, target)
    quantized = check_quantize(quantize, target)
    path = resolve_checkpoint(model_type, checkpoint, allow_download=allow_download, progress=progress)
    state = read_state_dict(path)
    found = infer_model_type(state)
    if found is None and describe_sam2_state(state):
        raise PersamError(f"checkpoint {path} holds {describe_sam2_state(state)}, but model type {model_type} "
                          f"was asked for")
    if found is None:
        raise PersamError(f"{path} is not a checkpoint of any known SAM model type ({', '.join(MODEL_TYPES)})")
    if found != model_type:
        raise PersamError(f"checkpoint {path} holds a {found} model, but model type {model_type} was asked for "
                          f"(load it as model type {found})")
    model = build_model(model_type, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PersamError(f"checkpoint {path} does not fit model type {model_type}: "
                          f"{error_line(exc)}") from None
    model.requires_grad_(False)  # SAM stays frozen: PerSAM-F learns only its own two weights
    model = model.eval().to(target)
    apply_precision(model, precision, attention, decoder, compiled=compiled, quantized=quantized)
    if quantized:
        quantize_encoder(model)
    if compiled:
        compile_encoder(model, compiled_dir())
    return model


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load, as plain values (what a worker process needs to load it itself)."""

    model_type: str = option(
        DEFAULT_MODEL_TYPE, "SAM architecture. 'small' is the model bundled with persam-video (no download); "
                            "vit_h/vit_l/vit_b are Meta's SAM, vit_t is MobileSAM (needs the [mobile] extra), "
                            "sam2.1_hiera_* are Meta's SAM 2.1 image models (need the [sam2] extra)",
        choices=MODEL_TYPES)
    checkpoint: Optional[str] = option(
        None, "checkpoint file for the model type; without it the bundled weights (small) or $PERSAM_VIDEO_CACHE "
              "(default ~/.cache/persam-video) is used, downloading the official file there if missing "
              "($PERSAM_VIDEO_MIRROR replaces the download host)", metavar="FILE")
    device: str = option("auto", "auto, cpu or cuda[:N]")
    precision: str = option(
        "fp32", "the image encoder's arithmetic: fp32 (exact), bf16 or fp16 (faster where the hardware has them; "
                "masks agree with fp32 to IoU >= 0.99); auto: bf16 on CPUs with native bf16 (avx512_bf16/amx), "
                "bf16 or fp16 on CUDA, fp32 elsewhere", choices=PRECISIONS)
    attention: str = option(
        "auto", "attention in SAM's encoder and decoder: fused (one scaled_dot_product_attention call; equal to "
                "float rounding) or plain (SAM's own); auto: fused unless the precision is fp32",
        choices=ATTENTION_MODES)
    decoder: str = option(
        "auto", "SAM's mask decoder: fast (the same computation reordered: the 4096 image tokens are never "
                "projected, one image pass is shared by objects that share it; equal to float rounding, faster "
                "on a CPU) or exact (SAM's own); auto: fast when attention is fused",
        choices=DECODER_MODES)
    compile: str = option(
        "off", "the image encoder compiled by torch's inductor (equal to float rounding; the first run on a machine "
               "builds it, a minute or more, later runs load it from $PERSAM_VIDEO_CACHE/compiled); auto: on for "
               "vit_t and vit_b/l/h on a CPU with a C++ compiler", choices=COMPILE_MODES)
    quantize: str = option(
        "off", "int8: the image encoder's Linear layers in dynamic int8 (CPU only; an explicit opt-in, not part "
               "of --fast: it moves the masks more than float rounding, see benchmarks/README.md)",
        choices=QUANTIZE_MODES)

    @classmethod
    def fast(cls, **settings: Any) -> "ModelSpec":
        """The fast path (precision auto, fused attention, the fast decoder; what ``--fast`` picks),
        with ``settings`` on top: equal masks to float rounding, not to the bit."""
        return cls(**{**FAST_MODEL, **settings})

    def load(self, progress: bool = True) -> torch.nn.Module:
        """Load the model (see :func:`load_sam`)."""
        return load_sam(self.model_type, self.checkpoint, device=self.device, progress=progress,
                        precision=self.precision, attention=self.attention, decoder=self.decoder,
                        compile=self.compile, quantize=self.quantize)

    def weights_sha256(self) -> Optional[str]:
        """The first 16 hex digits of the weights' sha256, or None when the file is not there (yet)."""
        try:
            path = Path(self.checkpoint) if self.checkpoint else bundled_checkpoint(self.model_type)
            return sha256_of(path)[:16]
        except (PersamError, KeyError, OSError):
            return None
