"""Multiple-instance learning on per-slice features: scan (bag) labels in, slice and scan
probabilities out.

``VGPMIL`` is the variational Gaussian process of Haussmann et al. (2017) that paper 000 fits
on the Att-CNN's slice features (Phase 2 of its pipeline): :class:`MILFeatureInferer` and
:class:`MILFeatureCollector` gather those features with a MONAI evaluator, and
:func:`fit_vgpmil_from_features` fits and saves one VGPMIL per scan output.
:func:`attention_slice_predictions` gives the Att-CNN's own slice labels from its attention, and
:func:`evaluate_mil` scores both phases like Table 1 of the paper. :class:`VGPMILInferer` runs
both phases on new scans.
"""

from __future__ import annotations

from ichbundles.mil.attention_slices import attention_slice_predictions
from ichbundles.mil.evaluation import (
    MIL_SCHEMA,
    evaluate_mil,
    flat_mil_metrics,
    mil_table_markdown,
    read_mil_results,
    summarise_mil_runs,
    write_mil_results,
)
from ichbundles.mil.features import MILFeatureCollector, MILFeatureInferer, MILFeatures
from ichbundles.mil.inferer import VGPMILInferer
from ichbundles.mil.vgpmil import VGPMIL
from ichbundles.mil.workflow import (
    VGPMIL_INPUTS,
    VGPMILFit,
    fit_vgpmil_from_features,
    load_vgpmil,
    paper_experiment,
    vgpmil_inputs,
)

__all__ = [
    "MIL_SCHEMA",
    "VGPMIL",
    "VGPMIL_INPUTS",
    "MILFeatureCollector",
    "MILFeatureInferer",
    "MILFeatures",
    "VGPMILFit",
    "VGPMILInferer",
    "attention_slice_predictions",
    "evaluate_mil",
    "fit_vgpmil_from_features",
    "flat_mil_metrics",
    "load_vgpmil",
    "mil_table_markdown",
    "paper_experiment",
    "read_mil_results",
    "summarise_mil_runs",
    "vgpmil_inputs",
    "write_mil_results",
]
