"""Metrics of fits to recorded data: PSTH correlation (with its NaN policy), noise ceiling, rate stats."""

from eirnn_fast.metrics.psth import (
    RATE_ERROR_OFFSET,
    noise_ceiling,
    pearson_per_neuron,
    per_neuron_correlation,
    per_neuron_mean_rates,
    psth_correlation,
    psth_correlation_report,
    rate_error,
    rate_statistics,
    select_units,
    smooth_psth,
    trial_average,
)

__all__ = [
    "RATE_ERROR_OFFSET",
    "noise_ceiling",
    "pearson_per_neuron",
    "per_neuron_correlation",
    "psth_correlation",
    "per_neuron_mean_rates",
    "psth_correlation_report",
    "rate_error",
    "rate_statistics",
    "select_units",
    "smooth_psth",
    "trial_average",
]
