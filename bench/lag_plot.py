"""The PNG of ``tidewire bench pipeline``: consumer lag over time in each phase, and freshness under load.

matplotlib runs on its Agg backend (files only, no display), imported when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.lag_sampling import LagSample


@dataclass(frozen=True)
class LagSeries:
    """The lag samples of one phase, and when its writer finished (None: unknown)."""

    title: str
    samples: Sequence[LagSample]
    writes_finished_s: float | None


def plot_pipeline_run(
    series: Sequence[LagSeries],
    freshness_points: Sequence[tuple[float, float]],
    output: Path,
    *,
    title: str,
) -> Path:
    """Draw one panel of lag (and rows written) per phase, then freshness over time; write ``output``.

    ``freshness_points`` are ``(seconds since the sustained phase began, freshness in ms)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(series) + (1 if freshness_points else 0)
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.2 * panels), squeeze=False)
    for axis, phase in zip(axes[:, 0], series, strict=False):
        times = [sample.elapsed_s for sample in phase.samples]
        axis.step(
            times, [sample.lag for sample in phase.samples], where="post", label="consumer lag (events)"
        )
        axis.set_ylabel("events")
        axis.set_title(phase.title)
        written_axis = axis.twinx()
        written_axis.plot(
            times,
            [sample.written for sample in phase.samples],
            color="tab:gray",
            linestyle="--",
            label="rows written",
        )
        written_axis.set_ylabel("rows written")
        if phase.writes_finished_s is not None:
            axis.axvline(phase.writes_finished_s, color="tab:red", linewidth=0.8, label="writes finished")
        handles = axis.get_legend_handles_labels()
        written_handles = written_axis.get_legend_handles_labels()
        axis.legend(handles[0] + written_handles[0], handles[1] + written_handles[1], loc="upper left")
        axis.set_xlabel("seconds since the phase started")
        axis.grid(alpha=0.3)
    if freshness_points:
        axis = axes[-1, 0]
        axis.scatter(
            [point[0] for point in freshness_points], [point[1] for point in freshness_points], s=3, alpha=0.5
        )
        axis.set_title("sustained load: freshness of each document (source commit → vectors committed)")
        axis.set_xlabel("seconds since the phase started (source commit)")
        axis.set_ylabel("freshness (ms)")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output
