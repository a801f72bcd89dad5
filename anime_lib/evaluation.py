"""One evaluation helper for every translator: translator + test sets + directions -> metrics.json rows.

::

    rows = evaluate(model, dom.test, method="CycleGAN", train_seconds=result.train_seconds)
    rows += reference_rows(dom.test)                 # "identity (no translation)" and "ground truth"
    print(to_markdown(rows, COLUMNS))
    verdicts = compare(rows[0], rows[2])             # {"toy_fid": "better", "gt_l1": "worse", ...}

Every row has the standard columns of :data:`anime_lib.results.RESULT_COLUMNS`, filled the same way in
every lesson: on data with ground truth (ToyFaces) realism, attr_preservation, gt_l1, toy_fid, roll_error
and diversity come from :mod:`anime_lib.metrics`; on data without it (a folder of real photos) they are
``None`` ("not measurable here", never invented). ``recon_l1`` (translate there and back) is measured
whenever the translator also knows the reverse direction. With ``fid_features`` (the real-photo part of a
lesson: ``"inception"``, the standard, or ``"probe"``, an offline stand-in) every row also gets ``fid``, ``kid``
and ``kid_std`` against the target domain's test set (:func:`anime_lib.metrics.inception_fid_kid`), and
:func:`reference_rows` gives the two rows that make them readable: the photos returned unchanged, and real
faces of the target domain that are not the test set.

:data:`BETTER` is the one table that says which way each figure is better; :func:`compare`,
:func:`best` and :func:`comparison_table` read it.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from anime_lib import metrics as M
from anime_lib.ranges import to_unit_range
from anime_lib.results import normalize_row, to_markdown
from anime_lib.translation import as_translator, parse_direction, reverse, translate_set

__all__ = ["BETTER", "TRANSLATION_METRICS", "FID_METRICS", "COLUMNS", "REAL_COLUMNS", "has_ground_truth", "measure_translations", "evaluate",
           "reference_rows", "way_to_truth", "better", "compare", "best", "comparison_table"]

#: Which way each figure is better: "higher" or "lower".
BETTER: dict[str, str] = {
    "realism": "higher",
    "attr_preservation": "higher",
    "gt_l1": "lower",
    "toy_fid": "lower",
    "diversity": "lower",
    "roll_error": "lower",
    "roll_error_tilted": "lower",
    "recon_l1": "lower",
    "feature_spread": "higher",
    "train_seconds": "lower",
    "fid": "lower",
    "kid": "lower",
}

#: What :func:`evaluate` measures per direction (None where it cannot be measured).
TRANSLATION_METRICS = ("realism", "attr_preservation", "gt_l1", "toy_fid", "roll_error", "diversity", "recon_l1")

#: What ``fid_features`` adds to every row (None where the feature network is not available here).
FID_METRICS = ("fid", "kid", "kid_std")

#: The columns of a lesson's table on real photos (no ground truth: FID/KID and the cycle error).
REAL_COLUMNS = ["method", "direction", "fid", "kid", "kid_std", "recon_l1", "train_seconds"]

#: The columns a lesson's translation table usually shows.
COLUMNS = ["method", "direction", "realism", "attr_preservation", "gt_l1", "toy_fid", "diversity", "roll_error",
           "recon_l1", "train_seconds"]


def has_ground_truth(test_set: Any) -> bool:
    """True for a set that carries attribute records and counterparts (ToyFaces), False for photo folders."""
    return hasattr(test_set, "records") and callable(getattr(test_set, "counterpart", None))


def _images(test_set: Any) -> torch.Tensor:
    return test_set if isinstance(test_set, torch.Tensor) else test_set.tensor()


def measure_translations(fake: torch.Tensor, source: Any, direction: str, *, method: str,
                         recon: torch.Tensor | None = None, probe=None, with_diversity: bool = True,
                         fid_target: Any = None, fid_features: Any = None, **columns: Any) -> dict[str, Any]:
    """One result row for translations ``fake`` (N, 3, S, S) in [-1, 1] of the test set ``source``.

    ``recon``: the translations translated back (for ``recon_l1``, in [0, 1] units). ``columns``: more
    columns of the row (dataset, train_seconds, steps, ...); ``img_size`` (the side in pixels) is always
    recorded, since toy_fid depends on it (lesson 00's calibration ladder). Metrics that need ground truth are None
    when ``source`` has none. ``fid_target`` (a set of real target-domain images) and ``fid_features``
    (:func:`anime_lib.metrics.fid_feature_extractor`'s kind, or an extractor): the row also gets FID/KID.
    """
    _, dst = parse_direction(direction)
    row: dict[str, Any] = {"method": method, "direction": direction, "img_size": int(fake.shape[-1]), **columns}
    row.update({k: None for k in TRANSLATION_METRICS})
    x = _images(source)
    if len(fake) != len(x):
        raise ValueError(f"{len(fake)} translations for {len(x)} source images")
    if recon is not None:
        row["recon_l1"] = float((to_unit_range(recon) - to_unit_range(x.float())).abs().mean())
    if has_ground_truth(source):
        fake01 = to_unit_range(fake)
        row.update(M.evaluate_translation(fake01, source, dst, probe=probe))
        if with_diversity:
            row["diversity"] = M.diversity(fake01, dst, probe)
    if fid_target is not None:
        row.update(fid_kid(to_unit_range(fake), fid_target, fid_features, probe))
    return normalize_row(row)


_SAID: set[str] = set()


def fid_kid(fake01: torch.Tensor, real_set: Any, features: Any = "inception", probe=None) -> dict[str, float | None]:
    """``{"fid", "kid", "kid_std"}`` of ``fake01`` (in [0, 1]) against the images of ``real_set`` (a set with
    ``.unit()``, or a tensor in [0, 1]), with the feature network ``features`` names ("inception", "probe") or
    an extractor module. Where that network is not available here (Inception offline) the values are None and
    the reason is printed once: never a substituted number."""
    real01 = real_set if isinstance(real_set, torch.Tensor) else real_set.unit()
    extractor = M.fid_feature_extractor(features, probe) if isinstance(features, str) else features
    try:
        return M.inception_fid_kid(fake01, real01, feature_extractor=extractor)
    except M.MetricUnavailable as exc:
        if str(exc) not in _SAID:
            _SAID.add(str(exc))
            print(f"FID/KID not measured: {exc}")
        return dict.fromkeys(FID_METRICS)


def evaluate(translator: Any, test_sets: Mapping[str, Any], directions: Sequence[str] | str | None = None, *,
             method: str, probe=None, conditions: Callable[[Any, str], Mapping[str, Any]] | None = None,
             cycle: bool = True, with_diversity: bool = True, batch: int = 128, device=None,
             outputs: dict | None = None, fid_features: Any = None, **columns: Any) -> list[dict[str, Any]]:
    """Translate each direction's test set and measure it: one row per direction.

    ``translator``: a :class:`~anime_lib.translation.Translator`, a generator module or a function
    (see :func:`~anime_lib.translation.as_translator`). ``test_sets``: domain -> set (``dom.test``): a ToySet
    (ground truth) or any set with ``.tensor()`` / a tensor in [-1, 1]. ``directions``: default, every
    direction the translator knows. ``conditions(source_set, direction)``: per-image conditions for the call
    (e.g. ``{"roll": ...}``). ``cycle``: also translate back (``recon_l1``) when the translator can.
    ``outputs``: a dict that receives each direction's translations (CPU, [-1, 1]) for figures.
    ``fid_features``: "inception" or "probe" (or an extractor): also FID/KID of each direction's translations
    against the target domain's test set (the real-photo part of a lesson, where nothing else is measurable).
    ``columns``: more columns for every row (``train_seconds=``, ``steps=``, ``dataset=`` ...).
    """
    if isinstance(directions, str):
        directions = [directions]
    model = as_translator(translator, directions or ("human->anime",))
    directions = list(directions or model.directions)
    rows = []
    for direction in directions:
        src, _ = parse_direction(direction)
        if src not in test_sets:
            raise KeyError(f"no test set for the source domain {src!r} (have {sorted(test_sets)})")
        source = test_sets[src]
        cond = dict(conditions(source, direction)) if conditions else {}
        fake = translate_set(model, source, direction, batch=batch, device=device, **cond)
        recon = None
        if cycle and reverse(direction) in model.directions:
            recon = translate_set(model, fake, reverse(direction), batch=batch, device=device, **cond)
        if outputs is not None:
            outputs[direction] = fake
        _, dst = parse_direction(direction)
        fid_target = test_sets.get(dst) if fid_features is not None else None
        if fid_features is not None and fid_target is None:
            raise KeyError(f"FID/KID of {direction} needs a test set of {dst!r} (have {sorted(test_sets)})")
        rows.append(measure_translations(fake, source, direction, method=method, recon=recon, probe=probe,
                                         with_diversity=with_diversity, fid_target=fid_target,
                                         fid_features=fid_features, **columns))
    return rows


def reference_rows(test_sets: Mapping[str, Any], directions: Iterable[str] = ("human->anime", "anime->human"),
                   probe=None, *, fid_features: Any = None, train_sets: Mapping[str, Any] | None = None
                   ) -> list[dict[str, Any]]:
    """The two reference points of every translation table, per direction: returning the input unchanged
    ("identity (no translation)") and the ground-truth counterparts ("ground truth (perfect translator)").
    Only for sets with ground truth; [] otherwise.

    Real photos (no ground truth) with ``fid_features``: FID/KID of the inputs returned unchanged, and of as
    many real target-domain images from ``train_sets`` ("real anime faces (training images)": what a
    perfect translator's outputs would score against this test set, the floor the sample size allows)."""
    rows = []
    for direction in directions:
        src, dst = parse_direction(direction)
        source = test_sets[src]
        if not has_ground_truth(source):
            if fid_features is None:
                continue
            rows.append(measure_translations(_images(source), source, direction, method="identity (no translation)",
                                             probe=probe, fid_target=test_sets[dst], fid_features=fid_features))
            if train_sets is not None:
                other = _images(train_sets[dst])[:len(source)]
                rows.append(normalize_row({"method": f"real {dst} faces (training images)", "direction": direction,
                                           "img_size": int(other.shape[-1]),
                                           **fid_kid(to_unit_range(other), test_sets[dst], fid_features, probe)}))
            continue
        rows.append(measure_translations(_images(source), source, direction, method="identity (no translation)",
                                         probe=probe, with_diversity=False))
        rows.append(measure_translations(source.counterpart().tensor(), source, direction,
                                         method="ground truth (perfect translator)", probe=probe))
    return rows


def way_to_truth(row: Mapping[str, Any], references: Sequence[Mapping[str, Any]],
                 metrics: Sequence[str] = ("realism", "gt_l1", "toy_fid")) -> dict[str, float | None]:
    """How far ``row`` went from returning its input unchanged (0) towards the ground truth (1), per metric:
    (row - identity) / (ground truth - identity), with the two rows of the row's direction in ``references``
    (:func:`reference_rows`). Below 0: worse than doing nothing. None where a value is missing or the two
    reference points coincide (attr_preservation is about 1 at both ends, so it has no such scale)."""
    ends: dict[str, Mapping[str, Any]] = {}
    for r in references:
        if r.get("direction") == row.get("direction"):
            for end, prefix in (("identity", "identity"), ("truth", "ground truth")):
                if str(r.get("method", "")).startswith(prefix):
                    ends[end] = r
    if len(ends) < 2:
        raise ValueError(f"references hold no identity and ground-truth rows for {row.get('direction')!r}; "
                         "use reference_rows(test_sets) of a dataset with ground truth")
    out: dict[str, float | None] = {}
    for m in metrics:
        value, start, end = row.get(m), ends["identity"].get(m), ends["truth"].get(m)
        out[m] = None if None in (value, start, end) or end == start else (value - start) / (end - start)
    return out


def better(metric: str, a: float, b: float) -> bool:
    """True when ``a`` is strictly better than ``b`` on ``metric`` (see :data:`BETTER`)."""
    if metric not in BETTER:
        raise KeyError(f"no direction of goodness known for {metric!r}; known: {sorted(BETTER)}")
    return a > b if BETTER[metric] == "higher" else a < b


def compare(row: Mapping[str, Any], reference: Mapping[str, Any], metrics: Iterable[str] | None = None,
            ties: Mapping[str, float] | None = None) -> dict[str, str]:
    """``{metric: "better" | "worse" | "tie"}`` of ``row`` against ``reference`` (both result rows).

    ``ties``: absolute differences below which two values count as a tie (default 0: only equal values).
    Metrics missing (None) in either row are left out.
    """
    ties = dict(ties or {})
    out = {}
    for m in metrics or [k for k in BETTER if k != "train_seconds"]:
        a, b = row.get(m), reference.get(m)
        if a is None or b is None:
            continue
        if abs(a - b) <= ties.get(m, 0.0):
            out[m] = "tie"
        else:
            out[m] = "better" if better(m, a, b) else "worse"
    return out


def best(rows: Sequence[Mapping[str, Any]], metric: str) -> Mapping[str, Any] | None:
    """The row with the best ``metric`` (rows where it is None are skipped; None if none has it)."""
    have = [r for r in rows if r.get(metric) is not None]
    if not have:
        return None
    key = (lambda r: r[metric]) if BETTER[metric] == "lower" else (lambda r: -r[metric])
    return min(have, key=key)


def comparison_table(rows: Sequence[Mapping[str, Any]], reference: Mapping[str, Any],
                     metrics: Sequence[str] = ("realism", "attr_preservation", "gt_l1", "toy_fid"),
                     ties: Mapping[str, float] | None = None) -> str:
    """A Markdown table: each row's values with "(better)", "(worse)" or "(tie)" against ``reference``."""
    table = []
    for r in rows:
        verdict = compare(r, reference, metrics, ties)
        line = {"method": r.get("method"), "direction": r.get("direction")}
        for m in metrics:
            v = r.get(m)
            line[m] = None if v is None else (f"{v:.3f}" + (f" ({verdict[m]})" if m in verdict and r is not reference else ""))
        table.append(line)
    return to_markdown(table, ["method", "direction", *metrics])
