"""Statistics, table files and plots of the paper benchmarks (no data, no training)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .settings import Settings, machine

#: differences below this share (%) of the reference MAE count as ties (seed noise at these sizes)
MIN_PCT = 5.0
#: % changes beyond this are drawn clipped at it, their value written at the bar's end
PCT_CLIP = 100.0


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


def seed_stats(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for one value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def verdict(dyn: list[float], ref: list[float], min_pct: float = MIN_PCT) -> str:
    """"win" / "loss" when the mean difference exceeds both the sum of the two seed stds and
    ``min_pct`` % of the reference mean (seed stds on one split understate the noise), else "tie"."""
    (m_d, s_d), (m_r, s_r) = seed_stats(dyn), seed_stats(ref)
    if len(dyn) < 2 or len(ref) < 2:
        return "n/a (1 seed)"
    margin = max(s_d + s_r, abs(m_r) * min_pct / 100)
    if m_r - m_d > margin:
        return "win"
    if m_d - m_r > margin:
        return "loss"
    return "tie"


def ensemble_mae(predictions, y) -> float:
    """MAE of the mean of several models' ``predictions`` of ``y``."""
    return float(np.mean(np.abs(np.mean(np.asarray(predictions, dtype=float), axis=0) - np.asarray(y, float))))


def pick_on_validation(maes: dict[str, list[float]]) -> str:
    """The name whose mean validation MAE is lowest (the first of equals, in ``maes``' order)."""
    return min(maes, key=lambda name: np.mean(maes[name]))


def fmt(mean: float, std: float, digits: int = 4) -> str:
    """``"mean ± std"``."""
    return f"{mean:.{digits}g} ± {std:.2g}"


def rounded(df: pd.DataFrame) -> pd.DataFrame:
    """Float columns to 4 significant digits."""
    return df.apply(lambda c: c.map(lambda v: float(f"{v:.4g}")) if c.dtype.kind == "f" else c)


def header(title: str, settings: Settings, command: list[str], extra: dict) -> dict:
    """Metadata written above a table: title, command, machine (with git revision), settings, ``extra``."""
    return {
        "table": title,
        "command": "python -m benchmarks.paper.run " + " ".join(shlex.quote(str(a)) for a in command),
        "machine": machine(),
        "settings": settings.describe(),
        **extra,
    }


def write_table(df: pd.DataFrame, name: str, meta: dict, out: Path, notes=()) -> Path:
    """``<out>/<name>.csv`` (``# key: value`` lines, then the table) and ``<out>/<name>.md``."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {k}: {v}" for k, v in meta.items()] + [f"# note: {n}" for n in notes]
    (out / f"{name}.csv").write_text("\n".join(lines) + "\n" + df.to_csv(index=False))
    md = [f"## {meta['table']}", ""] + [f"- **{k}**: {v}" for k, v in meta.items() if k != "table"]
    md += [f"- {n}" for n in notes] + ["", df.to_markdown(index=False), ""]
    (out / f"{name}.md").write_text("\n".join(md))
    log(f"wrote {out / name}.csv/.md")
    return out / f"{name}.csv"


# ----------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def savefig(fig, path: Path, caption: str) -> None:
    """Save ``fig`` with ``caption`` at its foot (no software stamp, so files are stable)."""
    fig.text(0.01, 0.005, caption, fontsize=6, va="bottom", wrap=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    _plt().close(fig)
    log(f"wrote {path}")


def plot_pct_change(df: pd.DataFrame, path: Path, caption: str,
                    labels: tuple[str, str] = ("dynamic (last stage)", "dynamic (stage tuned on val)")) -> None:
    """Horizontal bars of Table 2's % change in test MAE (columns ``dynamic %`` and ``tuned %`` vs best
    static, named ``labels`` in the legend), clipped at ±:data:`PCT_CLIP` so that one property near zero
    does not squash every other bar."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(df) + 1.8))
    yy = np.arange(len(df))
    for offset, column, label in ((-0.2, "dynamic %", labels[0]), (0.2, "tuned %", labels[1])):
        values = df[column].to_numpy(dtype=float)
        ax.barh(yy + offset, np.clip(values, -PCT_CLIP, PCT_CLIP), 0.4, label=label)
        for y, v in zip(yy + offset, values):
            if abs(v) > PCT_CLIP:
                ax.text(np.sign(v) * PCT_CLIP, y, f" {v:+.0f}% ", va="center", ha="right" if v > 0 else "left",
                        fontsize=6, color="white", fontweight="bold")
    ax.set_xlim(-PCT_CLIP * 1.02, PCT_CLIP * 1.02)
    ax.set_yticks(yy, [p + (" *" if f else "") for p, f in zip(df["property"], df["flag"])], fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"% change in test MAE vs best static (negative = dynamic better)\n"
                  f"bars clipped at ±{PCT_CLIP:.0f}%, the value written inside", fontsize=8)
    ax.legend(fontsize=7)
    ax.invert_yaxis()
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    savefig(fig, path, caption)


def plot_parity(parity: dict, path: Path, caption: str) -> None:
    """Parity plots, one panel per property: ``parity[key] = (y_test, pred_static, pred_dynamic,
    static name, unit, dynamic name)``."""
    plt = _plt()
    keys = list(parity)
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        y, p_s, p_d = (np.asarray(v, dtype=float) for v in parity[key][:3])
        best, unit, stage = parity[key][3:]
        ax.scatter(y, p_s, s=5, alpha=0.55, label=f"static {best.split(':')[1]}: {np.mean(np.abs(y - p_s)):.3g}")
        ax.scatter(y, p_d, s=5, alpha=0.55,
                   label=f"dynamic, stage {stage.split(':')[1]}: {np.mean(np.abs(y - p_d)):.3g}")
        lim = [min(y.min(), p_s.min(), p_d.min()), max(y.max(), p_s.max(), p_d.max())]
        ax.plot(lim, lim, "k--", lw=0.7)
        ax.set_title(key, fontsize=8)
        ax.set_xlabel(f"DFT ({unit})", fontsize=7)
        ax.set_ylabel(f"Roost ({unit})", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, title="test MAE", title_fontsize=6, loc="upper left")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    savefig(fig, path, caption)


def plot_layers(df: pd.DataFrame, path: Path, title: str, unit: str, caption: str) -> None:
    """Table 1: test MAE per stage, one panel per backbone, "all stages" and the mean baseline as lines."""
    plt = _plt()
    groups = list(df.groupby("backbone", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(max(6.5, 4.2 * len(groups)), 4), squeeze=False,
                             sharey=True)
    for ax, (name, part) in zip(axes[0], groups):
        layers = part[part["stage"] != "all"]
        x = np.arange(len(layers))
        ax.errorbar(x, layers["test MAE"], yerr=layers["std"], marker="o", capsize=3, label="one stage")
        every = part[part["stage"] == "all"]
        if len(every):
            ax.axhline(every["test MAE"].iloc[0], color="C2", ls="--", lw=1, label="all stages concatenated")
        ax.axhline(part["mean baseline MAE"].iloc[0], color="gray", ls=":", label="mean baseline")
        ax.set_xticks(x, layers["stage"], rotation=45, ha="right", fontsize=8)
        ax.set(xlabel="stage (input embedding -> last layer)", title=f"backbone {name}")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"test MAE ({unit})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    savefig(fig, path, caption)


def plot_learning_curves(df: pd.DataFrame, path: Path, caption: str) -> None:
    """Log-log test MAE against training-set size with seed-std error bars, one panel per property."""
    plt = _plt()
    groups = list(df.groupby("property", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False)
    for ax, (prop, part) in zip(axes[0], groups):
        for model, curve in part.groupby("model", sort=False):
            ax.errorbar(curve["train size"], curve["test MAE"], yerr=curve["std"], marker="o", capsize=3,
                        label=model)
        ax.set(xscale="log", yscale="log", xlabel="training-set size", title=prop,
               ylabel=f"test MAE ({part['unit'].iloc[0]})")
        sizes = sorted(set(part["train size"]))
        ax.set_xticks(sizes, size_labels(sizes), minor=False, fontsize=8)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        plain = plt.FuncFormatter(lambda v, _: f"{v:g}")  # 0.6, not 6 x 10^-1
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="both", labelsize=8)
        ax.legend(fontsize=6)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    savefig(fig, path, caption)


def size_labels(sizes, min_decades: float = 0.2) -> list[str]:
    """Tick labels for sorted training-set sizes on a log axis (``1,000`` style). A size closer than
    ``min_decades`` (in log10) to the one before it is written one line lower, so that neighbours
    such as 3,000 and 4,000 do not print over each other."""
    labels, lowered = [], False
    for i, n in enumerate(sizes):
        lowered = i > 0 and not lowered and np.log10(n) - np.log10(sizes[i - 1]) < min_decades
        labels.append(("\n" if lowered else "") + f"{n:,}")
    return labels


def backbones_caption(settings: str, backbones) -> str:
    """``settings`` (whose tail names one backbone) with the backbones a figure actually shows."""
    head = settings.rsplit("; backbone ", 1)[0] if "; backbone " in settings else settings
    names = list(dict.fromkeys(backbones))
    return f"{head}; backbone{'s' if len(names) > 1 else ''} {', '.join(names)}"


def plot_methods(df: pd.DataFrame, path: Path, caption: str) -> None:
    """Table 3: test MAE of every method and input as horizontal bars (seed-std error bars), one panel per
    property; dynamic inputs orange, static and composition inputs blue; rows without fits say so."""
    plt = _plt()
    from matplotlib.patches import Patch

    groups = list(df.groupby("property", sort=False))
    height = max(len(part) for _, part in groups)
    fig, axes = plt.subplots(1, len(groups), figsize=(8 * len(groups), 0.32 * height + 2), squeeze=False)
    for ax, (prop, part) in zip(axes[0], groups):
        yy = np.arange(len(part))
        mae, std = part["test MAE"].to_numpy(dtype=float), np.nan_to_num(part["std"].to_numpy(dtype=float))
        dyn = part["input"].str.startswith("dynamic").to_numpy()
        ax.barh(yy, np.nan_to_num(mae), xerr=std, color=np.where(dyn, "C1", "C0"), capsize=2)
        top = np.nanmax(mae + std) if np.isfinite(mae).any() else 1.0
        for y, m, sd, seeds in zip(yy, mae, std, part["seeds"]):
            ax.text(m + sd if np.isfinite(m) else 0, y, f"  {m:.3g}" if np.isfinite(m) else f" {seeds}",
                    va="center", fontsize=7)
        ax.set_xlim(0, top * 1.25)
        ax.set_yticks(yy, [f"{mo}: {i}" for mo, i in zip(part["model"], part["input"])], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="test MAE, mean ± std over seeds", title=prop)
        ax.legend(handles=[Patch(color="C1", label="dynamic inputs"),
                           Patch(color="C0", label="static / composition inputs")], fontsize=7, loc="lower right")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    savefig(fig, path, caption)


def plot_polymorphs(df: pd.DataFrame, path: Path, caption: str) -> None:
    """Table 4: test MAE with and without polymorphs (and on the test entries that have polymorphs),
    static vs dynamic, one panel per property."""
    plt = _plt()
    groups = list(df.groupby("property", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False)
    for ax, (prop, part) in zip(axes[0], groups):
        cells = [(s, col) for s in dict.fromkeys(part["set"])
                 for col in ("test MAE", "test MAE on polymorph entries")
                 if part.loc[part["set"] == s, col].notna().any() or col == "test MAE"]
        x = np.arange(len(cells))
        for k, emb in enumerate(dict.fromkeys(part["embedding"])):
            rows = part[part["embedding"] == emb].set_index("set")
            vals = [rows.loc[s, col] for s, col in cells]
            errs = [rows.loc[s, "std" if col == "test MAE" else "polymorph std"] for s, col in cells]
            vals, errs = np.asarray(vals, float), np.nan_to_num(np.asarray(errs, float))
            xs = x + (k - 0.5) * 0.38
            ax.bar(xs, np.nan_to_num(vals), 0.38, yerr=errs, capsize=3, label=emb, color=f"C{k}")
            for xi, v, e in zip(xs, vals, errs):
                ax.text(xi, (v + e) if np.isfinite(v) else 0, f"{v:.3g}" if np.isfinite(v) else "not in\nthe ledger",
                        ha="center", va="bottom", fontsize=6)
        ax.set_xticks(x, [f"{s}\n{'all test entries' if c == 'test MAE' else 'polymorph entries'}"
                          for s, c in cells], fontsize=7)
        ax.set(ylabel="test MAE", title=prop)
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    savefig(fig, path, caption)
