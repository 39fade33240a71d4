"""One labelled progress bar per stage, with an overall count and an estimate of the time left.

A stage (the pipeline's swap stage, ``tokenprobe swap``) runs many inner loops: a discovery sweep of every
attribute, greedy set searches, a confirmation sweep, spatial maps, a traversal. Each inner loop used to draw a
bar of its own; :class:`StageBar` is the one bar they all feed instead::

    swap [confirmation 2/9 attributes]:  43%|####3     | 12400/29000 decodes, 01:02 elapsed, 01:20 left

How the total is known before the work is done: a stage *expects* each phase's work up front (an estimate,
:meth:`StageBar.expect`); the loops that do the work *claim* their exact count when they start
(:meth:`StageBar.claim`: taken out of the current phase's estimate, the total grows if the estimate was short);
a phase that ends with part of its estimate unclaimed *settles* it (:meth:`StageBar.settle`: the total shrinks).
So the total is right once every phase has started, and a fair estimate before.

Inner loops take ``progress: bool | StageBar``: ``True`` draws their own bar (when called alone), ``False`` none,
a :class:`StageBar` feeds that one (:func:`inner_bar`).
"""
from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


#: "swap [confirmation 2/9 attributes]:  43%|####3     | 12400/29000 decodes, 01:02 elapsed, 01:20 left"
_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{unit}, {elapsed} elapsed, {remaining} left"


class StageBar:
    """The one bar of a stage (see the module docstring).

    Args:
        label: the stage's name, printed first (``swap``).
        unit: what is counted (``decodes``).
        enabled: draw it (``False``: count silently; still usable by the loops).
        file: where to draw (default: tqdm's, stderr).
    """

    def __init__(self, label: str, *, unit: str = "decodes", enabled: bool = True, file: Any = None) -> None:
        self.label = label
        self._bar = tqdm(total=0, desc=label, unit=f" {unit}", disable=not enabled, dynamic_ncols=True,
                         smoothing=0.05, file=file, bar_format=_FORMAT)
        self._forecast: dict[str, int] = {}
        self._phase = ""
        self.done = 0  # counted even when the bar is not drawn
        self.total = 0

    # ------------------------------------------------------------------ the plan
    def expect(self, phase: str, n: int) -> None:
        """Add ``n`` units of expected work for ``phase`` to the total (an estimate; claims correct it)."""
        n = max(0, int(n))
        self._forecast[phase] = self._forecast.get(phase, 0) + n
        self._grow(n)

    def claim(self, n: int) -> None:
        """``n`` units are about to be done in the current phase: they come out of its estimate; what the
        estimate lacks is added to the total."""
        n = max(0, int(n))
        left = self._forecast.get(self._phase, 0)
        take = min(left, n)
        self._forecast[self._phase] = left - take
        self._grow(n - take)

    def release(self, n: int) -> None:
        """``n`` units claimed will not be done (a loop stopped early): the total shrinks."""
        self._grow(-max(0, int(n)))

    def settle(self, phase: str | None = None) -> None:
        """The phase ended: drop its unclaimed estimate from the total."""
        self._grow(-self._forecast.pop(self._phase if phase is None else phase, 0))

    def phase(self, name: str, detail: str = "") -> None:
        """Name the current phase (claims are charged to it); ``detail`` (e.g. ``3/9 attributes``) is shown."""
        self._phase = name
        self.detail(detail)

    def detail(self, text: str) -> None:
        """Show ``text`` after the phase's name in the bar's label."""
        inner = " ".join(t for t in (self._phase, text) if t)
        self._bar.set_description_str(f"{self.label} [{inner}]" if inner else self.label, refresh=False)

    # ------------------------------------------------------------------ the work
    def update(self, n: int = 1) -> None:
        """``n`` units done."""
        self.done += int(n)
        self._bar.update(int(n))

    def close(self) -> None:
        """The stage ended: every estimate settles and the bar is closed."""
        for phase in list(self._forecast):
            self.settle(phase)
        self._bar.close()

    def __str__(self) -> str:
        """The bar's current line (e.g. for a log)."""
        return str(self._bar)

    def _grow(self, n: int) -> None:
        self.total = max(self.done, self.total + n)
        self._bar.total = self.total
        self._bar.refresh()

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Fed:
    """An inner loop's view of a :class:`StageBar`: it claims its count once; ``close`` leaves the bar open."""

    def __init__(self, stage: StageBar, total: int) -> None:
        self.stage = stage
        stage.claim(total)

    def update(self, n: int = 1) -> None:
        self.stage.update(n)

    def close(self) -> None:
        pass


def inner_bar(progress: bool | StageBar | None, total: int, desc: str, unit: str = "img") -> Any:
    """The bar an inner loop of ``total`` units updates: the stage's (``progress`` a :class:`StageBar`: the
    count is claimed there), or a bar of its own (``True``), or a silent one (``False`` / ``None``).

    The object has ``update(n)`` and ``close()`` (which closes only a bar of its own)."""
    if isinstance(progress, StageBar):
        return _Fed(progress, total)
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)


def stage_of(progress: bool | StageBar | None) -> StageBar | None:
    """``progress`` when it is a :class:`StageBar` (so a loop can name its phase), else ``None``."""
    return progress if isinstance(progress, StageBar) else None


__all__ = ["StageBar", "inner_bar", "stage_of"]
