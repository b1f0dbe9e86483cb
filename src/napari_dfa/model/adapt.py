"""Re-targeting a trained model to another class set (fine-tuning with new classes).

Classes are matched by name. Matching classes keep their query; new classes get new
queries (as in a fresh model); classes the user no longer has are dropped. All other
weights (backbone, pixel decoder, decoder layers) carry over unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from napari_dfa.model.config import ModelConfig, default_colors
from napari_dfa.model.segmenter import DFASegmenter

__all__ = ["PER_CLASS_PARAMS", "adapt_model", "copy_model"]

# state-dict entries with one row per class
PER_CLASS_PARAMS = (
    "decoder.query_feat",
    "decoder.query_pos",
    "decoder.focal_bias.bias",
    "decoder.focal_bias.bias_init",
    "decoder.focal_bias.prior",
)


def adapt_model(
    model: DFASegmenter,
    class_names: Sequence[str],
    prior: Sequence[float],
    class_colors: Sequence[str] | None = None,
    label_values: Sequence[int] | None = None,
    reset_bias: bool | None = None,
    **overrides,
) -> DFASegmenter:
    """A new model for ``class_names`` initialised from ``model`` (which is not modified).

    Args:
        model: the starting model.
        class_names: the new class set (order = label values 1..K unless ``label_values``).
        prior: frequency prior of the new classes (from the user's annotations).
        class_colors: display colours; by default kept for known classes.
        label_values: label value per class written in predictions.
        reset_bias: re-initialise the DFA bias from ``prior``. Default: when the class set,
            the bias placement or its initialisation changed (a bias learnt for one
            placement means something else under the other); otherwise it continues.
        overrides: other :class:`ModelConfig` fields to change (e.g. ``bias_placement``).
    """
    old = model.config
    names = list(class_names)
    old_index = {n: i for i, n in enumerate(old.class_names)}
    same_classes = names == list(old.class_names)
    if reset_bias is None:
        reset_bias = not same_classes or any(
            overrides.get(f, getattr(old, f)) != getattr(old, f) for f in ("bias_placement", "bias_init", "bias_tau")
        )
    if class_colors is None:
        fresh = default_colors(len(names))
        class_colors = [old.class_colors[old_index[n]] if n in old_index else fresh[i] for i, n in enumerate(names)]
    cfg = replace(
        old,
        class_names=names,
        class_colors=list(class_colors),
        prior=list(prior),
        label_values=list(label_values) if label_values is not None else list(range(1, len(names) + 1)),
        **overrides,
    )
    cfg = ModelConfig.from_dict(cfg.to_dict())  # re-run validation
    new = DFASegmenter(cfg)
    old_state = model.state_dict()
    state = new.state_dict()
    for key, value in old_state.items():
        if key in PER_CLASS_PARAMS or key not in state or state[key].shape != value.shape:
            continue
        state[key] = value.clone()
    rows = [(i, old_index[n]) for i, n in enumerate(names) if n in old_index]
    for key in ("decoder.query_feat", "decoder.query_pos"):
        for i, j in rows:
            state[key][i] = old_state[key][j]
    if not reset_bias:
        for i, j in rows:
            for key in ("decoder.focal_bias.bias", "decoder.focal_bias.bias_init"):
                state[key][i] = old_state[key][j]
    new.load_state_dict(state)
    if not new.config.bias_learnable or new.config.bias_placement == "none":
        new.focal_bias.bias.requires_grad_(False)
    return new.to(next(model.parameters()).device)


def copy_model(model: DFASegmenter) -> DFASegmenter:
    """An independent copy (same config, cloned weights)."""
    new = DFASegmenter(ModelConfig.from_dict(model.config.to_dict()))
    new.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    new.focal_bias.bias.requires_grad_(model.focal_bias.bias.requires_grad)
    return new.to(next(model.parameters()).device)
