"""Predict CT series with a bundle: reports, csv files and per-series errors.

The network, the preprocessing, the inferer and the postprocessing come from the bundle's
``configs/inference.yaml`` (parsed with MONAI's ``ConfigParser``), so prediction here and
``python -m monai.bundle run --config_file .../inference.yaml`` cannot drift apart. The model is
the bundle's shipped ``models/model.pt`` unless a checkpoint is given; the settings it carries
(``ichbundles.bundle.checkpoint``) set the config's network and preprocessing ids.

Example::

    from ichbundles.bundle.predict import Predictor, predict_series

    report = Predictor("ich_cnn_lstm").predict("scans/series-1")  # the shipped model
    results = predict_series("ich_cnn_lstm", "out/models/model.pt", ["s1", "s2"], "preds")
    exit_code(results)  # 0 when every series was predicted, 2 otherwise
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose

from ichbundles.bundle.checkpoint import (
    apply_checkpoint_settings,
    load_weights,
    read_checkpoint,
    shipped_checkpoint,
)
from ichbundles.bundle.paths import bundle_path
from ichbundles.bundle.report import (
    DEFAULT_VERSION,
    SLICE_EXTRA_KEYS,
    build_report,
    file_sha256,
    resolve_thresholds,
    write_atomic,
    write_prediction_csvs,
    write_report,
)
from ichbundles.transforms import LoadCTSeriesd

__all__ = [
    "ERRORS_JSON",
    "BundleModel",
    "PredictionResult",
    "Predictor",
    "TimedPreprocessing",
    "exit_code",
    "load_bundle_config",
    "load_bundle_model",
    "predict_series",
]

logger = logging.getLogger(__name__)

ERRORS_JSON = "errors.json"
INFERENCE_CONFIG = "inference.yaml"


def load_bundle_config(
    bundle: str | os.PathLike,
    config: str = INFERENCE_CONFIG,
    overrides: Mapping[str, Any] | None = None,
) -> ConfigParser:
    """Parse a bundle config with MONAI's ``ConfigParser``, with its ``metadata.json``.

    Args:
        bundle: bundle name under ``bundles/`` or bundle folder.
        config: config file name in the bundle's ``configs/``.
        overrides: id-value pairs set after reading, as ``monai.bundle run --id value`` does
            (``"network_def#hidden"``, ``"image_size"``, ...).

    Returns:
        The parser, ``bundle_root`` set to the bundle folder; nothing instantiated yet.
    """
    root = bundle_path(bundle)
    parser = ConfigParser()
    parser.read_config(root / "configs" / config)
    parser.read_meta(root / "configs" / "metadata.json")
    parser["bundle_root"] = str(root)
    for key, value in (overrides or {}).items():
        parser[key] = value
    return parser


@dataclass(frozen=True)
class BundleModel:
    """A bundle's inference config set up for one checkpoint (see :func:`load_bundle_model`).

    Attributes:
        parser: ``inference.yaml`` with ``checkpoint``, the checkpoint's settings and the
            overrides set; nothing instantiated yet.
        checkpoint: the checkpoint file.
        weights: its state dict.
        settings: its settings (empty for a checkpoint that carries none).
    """

    parser: ConfigParser
    checkpoint: Path
    weights: dict[str, torch.Tensor]
    settings: dict[str, Any]

    @property
    def bundle(self) -> str:
        """The bundle's folder name."""
        return Path(self.parser["bundle_root"]).name

    def network(self) -> torch.nn.Module:
        """The config's ``network_def`` with the checkpoint's weights, in eval mode.

        Raises:
            ValueError: weights that do not fit the network (one line).
        """
        network = self.parser.get_parsed_content("network_def", instantiate=True)
        try:
            return load_weights(network, self.weights).eval()
        except RuntimeError as error:  # load_state_dict: missing, unexpected or mis-sized keys
            detail = str(error).strip().splitlines()[-1].strip()  # e.g. the last size mismatch
            detail = detail.removeprefix("weights: ")
            hint = (
                "it is not a model of this bundle's inference network"
                if self.settings
                else "give the settings it was trained with as overrides"
            )
            raise ValueError(
                f"{self.checkpoint}: does not fit the network of {self.bundle} as configured "
                f"({detail}); {hint}"
            ) from None


def load_bundle_model(
    bundle: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> BundleModel:
    """Read a checkpoint and set a bundle's inference config up for it.

    The config's setting ids (``image_size``, ``backbone``, ...) take the checkpoint's values,
    then ``overrides`` are applied; configs that derive paths from ``checkpoint``
    (ich_attention_mil's VGPMIL folder) see this one.

    Args:
        bundle: bundle name under ``bundles/`` or bundle folder.
        checkpoint: a trained ``model.pt`` (or ``checkpoint_last.pt``); the bundle's shipped
            ``models/model.pt`` by default.
        overrides: config overrides, e.g. ``{"use_fusion": False}``.

    Raises:
        BundleNotFoundError: no such bundle.
        FileNotFoundError: no such checkpoint, or no checkpoint given and none shipped.
        ValueError: one line: an unreadable checkpoint, one of another bundle, or an override
            that contradicts the settings it was trained with.
    """
    checkpoint = Path(checkpoint) if checkpoint is not None else shipped_checkpoint(bundle)
    weights, settings = read_checkpoint(checkpoint)
    parser = load_bundle_config(bundle, overrides={"checkpoint": str(checkpoint)})
    apply_checkpoint_settings(parser, checkpoint, settings, overrides)
    return BundleModel(parser, checkpoint, weights, settings)


class TimedPreprocessing:
    """Apply a bundle's preprocessing, timing the reading and the rest apart.

    The transforms up to the first :class:`~ichbundles.transforms.LoadCTSeriesd` count as
    reading. They are called one after another without ``Compose``, so a
    :class:`~ichbundles.io.SeriesReadError` reaches the caller unwrapped.

    Args:
        transforms: a ``Compose`` or a list of dictionary transforms (the bundle's
            ``preprocessing``).
        timing_key: item key of the ``{"read": s, "preprocess": s}`` added.
    """

    def __init__(
        self,
        transforms: Compose | Sequence[Callable[[Any], Any]],
        timing_key: str = "timing_s",
    ) -> None:
        steps = list(transforms.transforms if isinstance(transforms, Compose) else transforms)
        split = next((i + 1 for i, t in enumerate(steps) if isinstance(t, LoadCTSeriesd)), 0)
        self.read_steps, self.other_steps = steps[:split], steps[split:]
        self.timing_key = timing_key

    def __call__(self, item: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        start = time.perf_counter()
        data = dict(item)
        for step in self.read_steps:
            data = step(data)
        read = time.perf_counter()
        for step in self.other_steps:
            data = step(data)
        data[self.timing_key] = {"read": read - start, "preprocess": time.perf_counter() - read}
        return data


@dataclass
class PredictionResult:
    """Outcome of one input series.

    Attributes:
        input: the input path as given.
        report: the ``ichbundles.report/v1`` report, or ``None`` when it failed.
        path: the report file, or ``None``.
        error: one line saying why it failed, or ``None``.
    """

    input: str
    report: dict[str, Any] | None = None
    path: Path | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the series was predicted."""
        return self.error is None


class Predictor:
    """A bundle's network with its weights, ready to predict series one at a time.

    Args:
        bundle: bundle name under ``bundles/`` or bundle folder.
        checkpoint: ``model.pt`` (see :func:`ichbundles.bundle.checkpoint.read_checkpoint`); the
            model the bundle ships by default. The settings it carries set the network and
            preprocessing; without settings, the config's values (and ``overrides``) are used.
        device: torch device; the config's ``device`` (CUDA when available) by default.
        thresholds: per-class decision thresholds (see
            :func:`ichbundles.bundle.report.resolve_thresholds`); the config's ``thresholds``
            by default.
        overrides: config overrides, e.g. ``{"use_fusion": False}``; one that contradicts the
            checkpoint's settings is an error.

    Raises:
        BundleNotFoundError: no such bundle.
        FileNotFoundError: no such checkpoint, or none given and the bundle ships none.
        ValueError: an unreadable checkpoint or one of another bundle, overrides contradicting
            its settings, an inferer that cannot serve it (ich_attention_mil without a VGPMIL
            for every class), or weights that do not fit the configured network.
    """

    def __init__(
        self,
        bundle: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        thresholds: float | Mapping[str, float] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        model = load_bundle_model(bundle, checkpoint, overrides)
        parser = model.parser
        self.bundle = model.bundle
        self.version = str(parser.get("_meta_", {}).get("version", DEFAULT_VERSION))
        self.checkpoint = model.checkpoint
        self.settings = model.settings
        self.checkpoint_sha256 = file_sha256(model.checkpoint)
        self.device = torch.device(device or parser.get_parsed_content("device"))
        if thresholds is None and "thresholds" in parser:
            thresholds = parser.get_parsed_content("thresholds")
        self.thresholds = resolve_thresholds(thresholds)
        # the inferer first: its complaint (ich_attention_mil without subtype VGPMILs) is the
        # one that says what to do, where the weights would only mismatch
        try:
            self.inferer = parser.get_parsed_content("inferer")
        except RuntimeError as error:  # MONAI wraps the inferer's own error
            if isinstance(error.__cause__, ValueError):
                raise error.__cause__ from None
            raise
        self.network = model.network().to(self.device)
        self.preprocessing = TimedPreprocessing(parser.get_parsed_content("preprocessing"))
        self.postprocessing = parser.get_parsed_content("postprocessing")

    def predict(self, path: str | os.PathLike | Sequence[str | os.PathLike]) -> dict[str, Any]:
        """Predict one series and return its ``ichbundles.report/v1`` report.

        Args:
            path: DICOM folder, list of DICOM files, or volume file (NIfTI, NRRD, MHA).

        Raises:
            SeriesReadError: the series cannot be read.
        """
        start = time.perf_counter()
        item = self.preprocessing({"image": path})
        model_start = time.perf_counter()
        with torch.inference_mode():
            image = item["image"][None].to(self.device)
            output = self.inferer(image, self.network)
            # an inferer may return {"pred": logits, <slice extra>: ...} (VGPMILInferer)
            extras = {}
            if isinstance(output, Mapping):
                extras = {k: v[0] for k, v in output.items() if k in SLICE_EXTRA_KEYS}
                output = output["pred"]
            probabilities = self.postprocessing({"pred": output[0]})["pred"].cpu()
        end = time.perf_counter()
        timing = {**item["timing_s"], "model": end - model_start, "total": end - start}
        source = path if isinstance(path, str | os.PathLike) else os.path.commonpath(path)
        return build_report(
            probabilities,
            item["image_meta"],
            bundle=self.bundle,
            version=self.version,
            checkpoint_sha256=self.checkpoint_sha256,
            source=str(source),
            thresholds=self.thresholds,
            timing_s=timing,
            slice_extras=extras,
        )


def _one_line(error: BaseException, source: str) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if source in text else f"{source}: {type(error).__name__}: {text}"


def predict_series(
    bundle: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    inputs: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    thresholds: float | Mapping[str, float] | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> list[PredictionResult]:
    """Predict each input series and write its report, the csv files and ``errors.json``.

    Writes into ``output``: ``<SeriesInstanceUID>.json`` per series predicted (atomically, so
    a failed series leaves no partial file), ``predictions.csv`` (RSNA ``ID,Label``),
    ``scan_predictions.csv`` and ``errors.json`` (``[{"input", "error"}]``, empty when all
    succeeded). A series that fails is logged as one line and does not stop the others.

    Args:
        bundle: bundle name under ``bundles/`` or bundle folder.
        checkpoint: the trained ``model.pt``, or ``None`` for the model the bundle ships.
        inputs: DICOM folders or volume files, one series each.
        output: output folder (created).
        device: torch device; CUDA when available by default.
        thresholds: per-class decision thresholds; 0.5 by default.
        overrides: config overrides (see :class:`Predictor`).
        progress: show a progress bar.

    Returns:
        One :class:`PredictionResult` per input, in input order.
    """
    from tqdm.auto import tqdm

    predictor = Predictor(bundle, checkpoint, device, thresholds, overrides)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    results: list[PredictionResult] = []
    for path in tqdm(list(inputs), desc="predict", unit="series", disable=not progress):
        source = str(path)
        try:
            report = predictor.predict(path)
            results.append(PredictionResult(source, report, write_report(report, output)))
        except (ValueError, OSError, RuntimeError) as error:  # SeriesReadError is a ValueError
            results.append(PredictionResult(source, error=_one_line(error, source)))
            # INFO: the results and errors.json carry it; the command line prints it once
            logger.info("%s", results[-1].error)
    write_prediction_csvs([r.report for r in results if r.report is not None], output)
    errors = [{"input": r.input, "error": r.error} for r in results if not r.ok]
    write_atomic(output / ERRORS_JSON, json.dumps(errors, indent=2))
    return results


def exit_code(results: Sequence[PredictionResult]) -> int:
    """0 when every series was predicted, 2 when any failed (the CLI's convention)."""
    return 0 if all(r.ok for r in results) else 2
