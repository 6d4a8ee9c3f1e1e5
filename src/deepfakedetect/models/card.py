"""The Markdown model card ``save_pretrained`` writes as ``README.md``."""

from __future__ import annotations

from deepfakedetect._config import ModelConfig

__all__ = ["render_model_card"]


def render_model_card(config: ModelConfig) -> str:
    """A Markdown model card from a config (what ``save_pretrained`` writes as ``README.md``)."""
    training = config.training or {}
    metrics = training.get("metrics") or {}
    lines = [
        "---",
        "library_name: deepfakedetect",
        "tags: [deepfake-detection, image-classification]",
        "---",
        "",
        f"# deepfakedetect detector ({config.backbone})",
        "",
        "A real-vs-fake classifier for faces, images and videos, loadable with",
        "",
        "```python",
        "from deepfakedetect import Detector",
        'detector = Detector.from_pretrained("<this repo or folder>")',
        "```",
        "",
        "## Inference",
        "",
        f"- Backbone: `{config.backbone}`, {config.num_outputs} output(s), labels {list(config.labels)}",
        f"- Input: {config.preprocess.input_size} px (shorter side resized to {config.preprocess.resize_size}, "
        f"centre crop, {config.preprocess.interpolation}), mean {list(config.preprocess.mean)}, std {list(config.preprocess.std)}",
        f"- Face stage: {'on (' + config.faces.detector + f', margin {config.faces.margin})' if config.faces.enabled else 'off (whole images)'}",
        f"- Test-time flip: {'on' if config.test_time_flip else 'off'}",
    ]
    kinds = [("images (and each video frame)", config.calibration)]
    if config.video_calibration is not None:
        kinds.append(("videos (the aggregated score)", config.video_calibration))
    else:
        kinds[0] = ("images and videos", config.calibration)
    for what, cal in kinds:
        lines.append(f"- Calibration for {what}: temperature {cal.temperature:.4g}, threshold {cal.threshold:.4g}")
        for name, thr in sorted(cal.operating_points.items()):
            lines.append(f"  - operating point `{name}`: threshold {thr:.4g}")
        if cal.uncertain_band is not None:
            share = cal.fitted_on.get("uncertain_share")
            target = cal.fitted_on.get("target_precision")
            lines.append(
                f"  - uncertain band: [{cal.uncertain_band[0]:.4g}, {cal.uncertain_band[1]:.4g})"
                + (f", target precision {target:g}" if isinstance(target, (int, float)) else "")
                + (f", {100 * share:.1f}% of the validation items" if isinstance(share, (int, float)) else "")
            )
        fitted = {k: cal.fitted_on[k] for k in ("n_real", "n_fake", "auc", "data") if k in cal.fitted_on}
        if fitted:
            lines.append(f"  - fitted on: {fitted}")
    lines += ["", "## Training", ""]
    if training:
        for k, v in sorted(training.items()):
            if k != "metrics":
                lines.append(f"- {k}: {v}")
    else:
        lines.append("- Not recorded.")
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        for k, v in sorted(metrics.items()):
            lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines += [
        "",
        "## Limits",
        "",
        "Scores are only as good as the data the model was trained on; check them on your own data",
        "(`deepfakedetect evaluate`) before relying on them.",
        "",
    ]
    return "\n".join(lines)
